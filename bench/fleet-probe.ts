/**
 * One fresh production server, the scaling curve's 10,000-machine workload in pieces, with the server's own CPU per
 * phase (from /proc) and its memory at rest (RSS, smaps by mapping, V8 heap spaces from /metrics). For A/B work on a
 * shared host (docs/BENCHMARKS.md, Fleet cost): one server at a time, compare CPU, not wall time.
 *
 *   npx tsx bench/fleet-probe.ts     env: UI=true|false, N (10000), PHASES (bulk,spread,filtered,all,enroll,rest),
 *                                    STATE (available; "enrolled" works without the spread phase), SAMPLES (300),
 *                                    BENCH_NODE_FLAGS / BENCH_SERVER_FILE as for bench:list, SMAPS_FILE (copy of smaps)
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createRacks, enrollOne, fillRacks, MACHINES_PER_RACK } from "./lib/fleet";
import { TrpcClient } from "./lib/http-trpc";
import { processCpuMs } from "./lib/report";
import { readMemory, startServer } from "./lib/server";
import { percentile, runConcurrent, sampleSequential } from "./lib/stats";

const N = Number(process.env.N ?? 10000);
const UI = process.env.UI !== "false";
const PHASES = (process.env.PHASES ?? "bulk,filtered,all,enroll,rest").split(",");
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const STATE = process.env.STATE ?? "available";
const cpuMs = (pid: number) => processCpuMs(pid) ?? 0;
function smaps(pid: number) {
  const txt = fs.readFileSync(`/proc/${pid}/smaps`, "utf8");
  const by = new Map<string, number>();
  let name = "";
  for (const line of txt.split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) { name = m[1] || "[anon]"; if (name.includes("/")) name = name.replace(/.*node_modules\//, "nm/"); continue; }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r) by.set(name, (by.get(name) ?? 0) + Number(r[1]));
  }
  return [...by].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `${(v / 1024).toFixed(1)} ${k}`).join("; ");
}
const load = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const server = await startServer(ROOT, "bench-admin-password-1", { RACKHAND_UI: UI ? "true" : "false", RACKHAND_POWER_SYNC: "true" });
const client = new TrpcClient(server.url);
const out: string[] = [`ui=${UI} flags=${process.env.BENCH_NODE_FLAGS ?? "default"} file=${process.env.BENCH_SERVER_FILE ?? "dist"} load ${load()}`];
try {
  await client.login("admin", "bench-admin-password-1");
  await client.mutate("oob.updateSyncSettings", { intervalS: 3600 });
  const racks = await createRacks(client, "c", Math.ceil((N + 1000) / MACHINES_PER_RACK));
  const specs = fillRacks(racks, 0, N + 1000);
  out.push(`start rss ${readMemory(server.pid).rssMb.toFixed(0)}`);
  let c0 = cpuMs(server.pid), t0 = performance.now();
  const mark = (what: string, extra = "") => {
    const c = cpuMs(server.pid), t = performance.now();
    out.push(`${what}: cpu ${(c - c0).toFixed(0)} ms wall ${(t - t0).toFixed(0)} ms ${extra}`);
    c0 = c; t0 = t;
  };
  const chunk = specs.slice(0, N).map((m) => ({ name: m.name, rackId: m.rack.id, uPosition: m.u, bootMac: m.mac, ip: m.ip,
    bmc: { driver: "fake", address: m.bmcAddress, port: 623, username: "admin", password: `pw-${m.mac.slice(-8)}` } }));
  mark("setup");
  if (!PHASES.includes("bulk")) throw new Error("bulk needed");
  await client.mutate("machines.bulkEnroll", { machines: chunk });
  mark("bulkEnroll", `(${N} rows)`);
  if (PHASES.includes("spread")) {
  const ids: number[] = (await client.query<{ rows: { id: number }[] }>("machines.listFields", { sort: "created", pageSize: 10000, fields: ["id"] })).rows.map((r) => r.id);
  await client.mutate("machines.bulkAction", { selection: { ids }, action: "manage" });
  await client.mutate("machines.bulkAction", { selection: { ids: ids.filter((_, k) => k % 10 >= 3 && k % 10 <= 6) }, action: "provide" });
  mark("spread");
  }
  if (PHASES.includes("filtered")) {
    const total = (await client.query<{ total: number }>("machines.list", { states: [STATE], pageSize: 1 })).total;
    const fPages = Math.min(40, Math.ceil(total / 100));
    const S = Number(process.env.SAMPLES ?? 300);
    await sampleSequential(30, 0, (i) => client.query("machines.list", { states: [STATE], sort: "name", page: (i % fPages) + 1, pageSize: 100 }));
    mark("filtered warm");
    const s = await sampleSequential(0, S, (i) => client.query("machines.list", { states: [STATE], sort: "name", page: (i % fPages) + 1, pageSize: 100 }));
    const c = cpuMs(server.pid) - c0;
    mark("filtered", `p50 ${percentile(s, 50).toFixed(2)} ms, server cpu/req ${(c / S).toFixed(3)} ms`);
  }
  if (PHASES.includes("all")) {
    for (let k = 0; k < 5; k++) await client.query("machines.list", { sort: "name", pageSize: 10000 });
    mark("all x5");
  }
  if (PHASES.includes("enroll")) {
    const es = specs.slice(N, N + 1000);
    const wall = await runConcurrent(es.length, 8, (i) => enrollOne(client, es[i]!));
    mark("enroll8", `${((1000 / wall) * 1000).toFixed(0)}/s`);
  }
  out.push(`rss after ${readMemory(server.pid).rssMb.toFixed(0)}`);
  if (PHASES.includes("rest")) {
    await new Promise((r) => setTimeout(r, 15000));
    out.push(`rss rest ${readMemory(server.pid).rssMb.toFixed(0)} load ${load()}`);
    out.push(`smaps: ${smaps(server.pid)}`);
    const met = await (await fetch(`${server.url}/metrics`)).text();
    out.push("heap: " + met.split("\n").filter((l: string) => /^nodejs_(heap_size_(used|total)_bytes|external_memory_bytes|heap_space_size_(used|total)_bytes)/.test(l)).map((l: string) => l.replace(/nodejs_|_bytes|space="|"/g, "").replace(/ (\d+)$/, (_, v) => " " + (Number(v) / 2 ** 20).toFixed(1))).join("; "));
    const r = fs.readFileSync(`/proc/${server.pid}/smaps_rollup`, "utf8");
    out.push("rollup: " + r.split("\n").filter((l) => /^(Rss|Pss_Anon|Pss_File|Shared_Clean|Private_Clean|Private_Dirty|Anonymous):/.test(l)).map((l) => l.replace(/\s+/g, " ")).join("; "));
    if (process.env.SMAPS_FILE) fs.copyFileSync(`/proc/${server.pid}/smaps`, process.env.SMAPS_FILE);
    if (process.env.HOLD) { console.log(`PID ${server.pid} URL ${server.url}`); await new Promise((r) => setTimeout(r, Number(process.env.HOLD))); }
  }
} finally {
  client.close();
  await server.stop();
  console.log(out.join("\n"));
}
