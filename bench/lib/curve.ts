/**
 * The scaling curve of bench:list: a fresh production server per fleet size N, seeded with machines.bulkEnroll, then
 * the same requests at every N (list page, keyset page, filtered page, all machines, enrollment with 8 clients, power
 * sync sweeps) and the server's RSS. One row per N in a markdown table.
 */
import { performance } from "node:perf_hooks";
import { createRacks, enrollOne, fillRacks, MACHINES_PER_RACK, type MachineSpec } from "./fleet";
import { BenchError, TrpcClient } from "./http-trpc";
import { readMemory, startServer } from "./server";
import { median, percentile, runConcurrent, sampleSequential } from "./stats";

const BULK_CHUNK = 10_000;
const PAGE = 100;
const ENROLL_N = 1_000;
const ENROLL_WORKERS = 8;
const MACHINE_STATES = ["enrolled", "manageable", "inspecting", "inspect_failed", "available", "deploying", "deploy_failed", "deployed", "cleaning", "clean_failed"];

export interface CurvePoint {
  n: number;
  ui: boolean;
  seedS: number;
  /** machines.bulkEnroll, machines per second (median over the chunks of ≤ 10,000). */
  bulkPerS: number;
  /** Page of 100, sort name, no filter, offset pages cycled over the whole fleet: p50 ms. */
  pageP50: number;
  /** Page of 100, sort name, keyset (cursor) walk over the whole fleet: p50 ms. */
  keysetP50: number;
  /** Page of 100 of states=[available] (40 %), sort name, offset pages cycled: p50 ms. */
  filteredP50: number;
  /** Every machine, fetched as keyset pages of 10,000: p50 ms of the whole fetch. */
  allP50: number;
  allPayloadMb: number;
  /** machines.enroll with 8 concurrent clients, machines per second. */
  enrollPerS: number;
  /** Server CPU of one power-sync sweep (median of 3 after a first): every machine skipped / all on the fake driver. */
  syncIdleCpuMs: number;
  syncFakeCpuMs: number;
  syncFakeWallMs: number;
  rssMb: number;
  peakRssMb: number;
  /** RSS after 15 s without requests (the heap shrinks after a burst). */
  restRssMb: number;
}

export interface CurveOptions {
  root: string;
  password: string;
  sizes: number[];
  ui: boolean;
  /** Samples per latency figure (after 10 % warm-up). */
  samples: number;
  log: (msg: string) => void;
}

interface Page {
  rows: { id: number }[];
  total: number;
  nextCursor: string | null;
}

function bulkItem(m: MachineSpec) {
  return {
    name: m.name,
    rackId: m.rack.id,
    uPosition: m.u,
    bootMac: m.mac,
    ip: m.ip,
    bmc: { driver: "fake", address: m.bmcAddress, port: 623, username: "admin", password: `pw-${m.mac.slice(-8)}` },
  };
}

/** Every machine id in creation order, through keyset pages of machines.listFields. */
async function allIds(client: TrpcClient): Promise<number[]> {
  const ids: number[] = [];
  let cursor: string | undefined;
  do {
    const p = await client.query<Page>("machines.listFields", { sort: "created", pageSize: 10_000, fields: ["id"], ...(cursor && { cursor }) });
    ids.push(...p.rows.map((r) => r.id));
    cursor = p.nextCursor ?? undefined;
  } while (cursor);
  return ids;
}

/** 60 % manageable (manage), 40 % available (manage, provide), interleaved by creation order; no jobs start. */
async function spread(client: TrpcClient, ids: number[]): Promise<void> {
  const act = async (action: string, selected: number[]) => {
    for (let at = 0; at < selected.length; at += 10_000) {
      const results = await client.mutate<{ ok: boolean; name: string; error?: string }[]>("machines.bulkAction", {
        selection: { ids: selected.slice(at, at + 10_000) },
        action,
      });
      const bad = results.find((r) => !r.ok);
      if (bad) throw new BenchError(`bulk ${action} refused ${bad.name}: ${bad.error}`);
    }
  };
  await act("manage", ids);
  await act("provide", ids.filter((_, k) => k % 10 >= 3 && k % 10 <= 6));
}

async function sweep(client: TrpcClient): Promise<{ cpuMs: number; durationMs: number; machines: number }> {
  return client.mutate("oob.syncNow", {});
}

async function point(o: CurveOptions, n: number): Promise<CurvePoint> {
  const server = await startServer(o.root, o.password, { RACKHAND_UI: o.ui ? "true" : "false", RACKHAND_POWER_SYNC: "true" });
  const client = new TrpcClient(server.url);
  try {
    await client.login("admin", o.password);
    // The periodic sweep would run during the measurements: make it rare (Sync now still runs one).
    await client.mutate("oob.updateSyncSettings", { intervalS: 3600 });
    const t0 = performance.now();
    const racks = await createRacks(client, "c", Math.ceil((n + ENROLL_N) / MACHINES_PER_RACK));
    const specs = fillRacks(racks, 0, n + ENROLL_N);
    const rates: number[] = [];
    for (let at = 0; at < n; at += BULK_CHUNK) {
      const chunk = specs.slice(at, Math.min(at + BULK_CHUNK, n)).map(bulkItem);
      const t = performance.now();
      const r = await client.mutate<{ enrolled: number }>("machines.bulkEnroll", { machines: chunk });
      rates.push((r.enrolled / (performance.now() - t)) * 1000);
      if (r.enrolled !== chunk.length) throw new BenchError(`bulkEnroll enrolled ${r.enrolled} of ${chunk.length}`);
    }
    const ids = await allIds(client);
    if (ids.length !== n) throw new BenchError(`expected ${n} machines, listed ${ids.length}`);
    await spread(client, ids);
    const seedS = (performance.now() - t0) / 1000;
    o.log(`  N=${n}: seeded in ${seedS.toFixed(1)} s (bulk enroll ${Math.round(median(rates))}/s)`);

    const warm = Math.max(3, Math.round(o.samples / 10));
    const pages = Math.ceil(n / PAGE);
    const pageS = await sampleSequential(warm, o.samples, (i) => client.query("machines.list", { sort: "name", page: (i % pages) + 1, pageSize: PAGE }));
    const filteredTotal = (await client.query<Page>("machines.list", { states: ["available"], pageSize: 1 })).total;
    const fPages = Math.ceil(filteredTotal / PAGE);
    const filteredS = await sampleSequential(warm, o.samples, (i) =>
      client.query("machines.list", { states: ["available"], sort: "name", page: (i % fPages) + 1, pageSize: PAGE }),
    );
    let cursor: string | null = null;
    const keysetS = await sampleSequential(warm, o.samples, async () => {
      const p: Page = await client.query<Page>("machines.list", { sort: "name", pageSize: PAGE, ...(cursor && { cursor }) });
      cursor = p.nextCursor;
    });
    let payload = 0;
    const allS = await sampleSequential(1, 5, async () => {
      let c: string | null = null;
      let bytes = 0;
      do {
        const p: Page = await client.query<Page>("machines.list", { sort: "name", pageSize: 10_000, ...(c && { cursor: c }) });
        bytes += Buffer.byteLength(JSON.stringify(p));
        c = p.nextCursor;
      } while (c);
      payload = bytes / 1024 ** 2;
    });

    const enrollSpecs = specs.slice(n, n + ENROLL_N);
    const wallMs = await runConcurrent(enrollSpecs.length, ENROLL_WORKERS, (i) => enrollOne(client, enrollSpecs[i]!));
    const mem = readMemory(server.pid);

    await new Promise((r) => setTimeout(r, 15_000));
    const rest = readMemory(server.pid);

    await client.mutate("oob.updateSyncSettings", { skipStates: MACHINE_STATES });
    await sweep(client);
    const idle = [await sweep(client), await sweep(client), await sweep(client)];
    if (idle.some((s) => s.machines !== 0)) throw new BenchError("a sweep with every state skipped still checked machines");
    await client.mutate("oob.updateSyncSettings", { skipStates: [] });
    await sweep(client);
    const fake = [await sweep(client), await sweep(client), await sweep(client)];
    if (fake.some((s) => s.machines !== n + ENROLL_N)) throw new BenchError(`a fake-driver sweep checked ${fake[0]!.machines} machines, expected ${n + ENROLL_N}`);

    return {
      n,
      ui: o.ui,
      seedS,
      bulkPerS: median(rates),
      pageP50: percentile(pageS, 50),
      keysetP50: percentile(keysetS, 50),
      filteredP50: percentile(filteredS, 50),
      allP50: percentile(allS, 50),
      allPayloadMb: payload,
      enrollPerS: (enrollSpecs.length / wallMs) * 1000,
      syncIdleCpuMs: median(idle.map((s) => s.cpuMs)),
      syncFakeCpuMs: median(fake.map((s) => s.cpuMs)),
      syncFakeWallMs: median(fake.map((s) => s.durationMs)),
      rssMb: mem.rssMb,
      peakRssMb: mem.peakRssMb,
      restRssMb: rest.rssMb,
    };
  } catch (err) {
    throw new BenchError(`scaling curve at N=${n}: ${err instanceof Error ? err.message : String(err)}\n--- server log (tail) ---\n${server.logTail()}`);
  } finally {
    client.close();
    await server.stop();
  }
}

export async function measureCurve(o: CurveOptions): Promise<CurvePoint[]> {
  const out: CurvePoint[] = [];
  for (const n of o.sizes) {
    o.log(`scaling curve: N=${n.toLocaleString("en")} (${o.ui ? "UI on" : "API only"})`);
    out.push(await point(o, n));
  }
  return out;
}

const f = (x: number, d = 1) => x.toLocaleString("en", { maximumFractionDigits: d, minimumFractionDigits: d });
const mark = (ok: boolean) => (ok ? "" : " **(missed)**");

/**
 * The curve as a markdown table, with the targets that apply at 10,000 machines marked. The memory target is read
 * 15 s after the workload: right after it the RSS is the burst's high-water mark less whatever V8 happened to collect
 * during it (the idle collector waits for a quiet moment, and there is none inside the workload): UI on 144 MiB, then
 * 247 MiB once the collector stopped collecting inside long requests, while 15 s later it went from 144 to 123 MiB.
 * The figure is shown, unmarked.
 */
export function renderCurve(points: CurvePoint[]): string {
  const lines = [
    "| machines | list page of 100 (offset) p50 | keyset page p50 | filtered page p50 | all machines p50 | JSON bulk enroll | enroll, 8 clients | power sync CPU, nothing to sync | power sync CPU, fake driver (wall) | RSS right after (peak) | RSS 15 s later |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const p of points) {
    const at10k = p.n === 10_000;
    lines.push(
      `| ${p.n.toLocaleString("en")}${p.ui ? "" : " (API only)"} | ${f(p.pageP50, 2)} ms | ${f(p.keysetP50, 2)} ms | ${f(p.filteredP50, 2)} ms${at10k ? mark(p.filteredP50 <= 2) : ""} | ` +
        `${f(p.allP50, 0)} ms (${f(p.allPayloadMb)} MB) | ${Math.round(p.bulkPerS).toLocaleString("en")}/s${mark(p.bulkPerS >= 20_000)} | ` +
        `${Math.round(p.enrollPerS).toLocaleString("en")}/s${mark(p.enrollPerS >= 1_000)} | ${f(p.syncIdleCpuMs, 2)} ms${at10k ? mark(p.syncIdleCpuMs <= 10) : ""} | ` +
        `${f(p.syncFakeCpuMs, 0)} ms (${f(p.syncFakeWallMs, 0)} ms)${at10k ? mark(p.syncFakeCpuMs <= 300) : ""} | ${f(p.rssMb, 0)} MiB (${f(p.peakRssMb, 0)}) | ${f(p.restRssMb, 0)} MiB${at10k ? mark(p.restRssMb <= (p.ui ? 150 : 110)) : ""} |`,
    );
  }
  return lines.join("\n");
}
