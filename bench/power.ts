/**
 * npm run bench:power — power-sync sweeps over 20 and 200 ipmi_sim BMCs for three status-read designs (one
 * ipmitool per call, a long-lived ipmitool shell per BMC, Rackhand's native RMCP+ probe): wall time and CPU per BMC
 * including children; power-on latency; 10,000-machine sweeps on the fake driver and with nothing to sync.
 * Prints its Markdown section and writes it into docs/BENCHMARKS.md.
 */
import fs from "node:fs";
import path from "node:path";
import { writeSection } from "./lib/sections";
import os from "node:os";
import { machineEnrollSchema } from "../lib/schemas";
import { enrollMany } from "../server/machines/bulk-enroll";
import { sweepPower } from "../server/oob/power-sync";
import { startSims, SIM_USER, type IpmiSim } from "../server/oob/testing/ipmi-sim";
import { createHarness } from "../server/testing/harness";
import { IpmitoolShell } from "./lib/ipmitool-shell";
import { median } from "./lib/stats";

const hex2 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");
/** A unique machine per n (the test fixtures import vitest, so not reused here). */
const machineInput = <T extends object>(n: number, extra?: T) => ({ name: `bench-${n}`, bootMac: `52:54:00:00:${hex2(n >> 8)}:${hex2(n)}`, ...extra });

const CONCURRENCY = 16;
const SPACING_MS = 100;
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

/** CPU of this process's reaped children (ipmitool runs), ms, from /proc/self/stat cutime + cstime. */
function childCpuMs(): number {
  const f = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return ((Number(f[13]) + Number(f[14])) * 1000) / 100;
}
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
const rounds = 5;

interface Row {
  design: string;
  n: number;
  sweeps: number[];
  serverCpu: number[];
  childCpu: number[];
  note?: string;
}

/** Sweeps through Rackhand's own code path (sweepPower), status reads by `probe`. */
async function sweepRow(sims: IpmiSim[], probe: "ipmitool" | "native"): Promise<Row> {
  const h = createHarness({ oob: { spacingMs: SPACING_MS, statusProbe: probe } });
  try {
    await h.admin.oob.updateSyncSettings({ concurrency: CONCURRENCY });
    for (const [i, s] of sims.entries()) {
      await h.operator.machines.enroll(machineInput(i + 1, { bmc: { address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password } }));
    }
    await sweepPower(h.domain); // warm-up (and the first last-seen writes)
    const row: Row = { design: probe === "native" ? "(b) native RMCP+ probe" : "today: one ipmitool per status call", n: sims.length, sweeps: [], serverCpu: [], childCpu: [] };
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, SPACING_MS));
      const c0 = process.cpuUsage();
      const k0 = childCpuMs();
      const st = await sweepPower(h.domain);
      row.serverCpu.push(cpuMs(process.cpuUsage(c0)));
      row.childCpu.push(childCpuMs() - k0);
      if (st.failed) throw new Error(`${probe}: sweep failed for ${st.failed} BMCs`);
      row.sweeps.push(st.durationMs);
    }
    const ps = h.domain.oob.probeStats;
    row.note = `reads: ${ps.native} native, ${ps.fallback} fallback, ${ps.ipmitool} ipmitool`;
    return row;
  } finally {
    h.close();
  }
}

/** Design (a): a long-lived ipmitool shell per BMC, swept with the same concurrency. */
async function shellRow(sims: IpmiSim[]): Promise<Row> {
  const shells = sims.map((s) => new IpmitoolShell({ machineId: 0, address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password, privilege: "ADMINISTRATOR", cipherSuite: 3 }));
  try {
    // Start + first session, 16 at a time, with a generous first answer time on a busy host.
    for (let i = 0; i < shells.length; i += CONCURRENCY) await Promise.all(shells.slice(i, i + CONCURRENCY).map((sh) => sh.run("chassis power status", 30_000)));
    const row: Row = { design: "(a) ipmitool shell per BMC", n: sims.length, sweeps: [], serverCpu: [], childCpu: [] };
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, SPACING_MS));
      const shellCpu0 = shells.reduce((a, sh) => a + sh.cpuMs(), 0);
      const c0 = process.cpuUsage();
      const t = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < shells.length) {
            const sh = shells[next++]!;
            // Design (a)'s recovery: a failed command restarts that BMC's shell (new session) and asks once more.
            const ask = async () => {
              const out = await sh.run("chassis power status");
              if (/Chassis Power is (on|off)/.test(out)) return out;
              sh.kill();
              throw new Error(`unreadable answer ${JSON.stringify(out)}`);
            };
            await ask().catch(() => ask());
          }
        }),
      );
      row.sweeps.push(performance.now() - t);
      row.serverCpu.push(cpuMs(process.cpuUsage(c0)));
      row.childCpu.push(shells.reduce((a, sh) => a + sh.cpuMs(), 0) - shellCpu0);
    }
    row.note = `${shells.reduce((a, sh) => a + sh.restarts, 0) - shells.length} shell restarts; /proc CPU has 10 ms ticks`;
    return row;
  } finally {
    for (const sh of shells) sh.kill();
  }
}

async function main() {
  const lines: string[] = [];
  const loadBefore = load();
  // Started 20 at a time: each start waits for an `mc info` answer within 10 s, which 200 at once miss on a busy host.
  const sims: IpmiSim[] = [];
  for (let i = 0; i < 200; i += 20) sims.push(...(await startSims(20, `b${i / 20}x`)));
  console.error(`[bench:power] 200 ipmi_sim BMCs up, load ${load()}`);
  try {
    // One ipmitool call, sequential, for the floor.
    const single: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = performance.now();
      if (sims[0]!.ipmitool(["chassis", "power", "status"]).status !== 0) throw new Error("sim 0 does not answer");
      single.push(performance.now() - t);
    }
    lines.push(`One \`ipmitool chassis power status\` spawned (median of 15): **${median(single).toFixed(0)} ms**.`, "");
    lines.push(
      "| BMCs | design | sweep, median of 5 (all rounds) | server CPU / sweep | children CPU / sweep | CPU per BMC per sweep | target | |",
      "|---|---|---|---|---|---|---|---|",
    );
    let loadDuring = "";
    for (const n of [20, 200]) {
      const sub = sims.slice(0, n);
      for (const make of [() => sweepRow(sub, "ipmitool"), () => shellRow(sub), () => sweepRow(sub, "native")]) {
        const t0 = performance.now();
        const row = await make();
        console.error(`[bench:power] ${n} BMCs, ${row.design}: ${((performance.now() - t0) / 1000).toFixed(1)} s, load ${load()}`);
        loadDuring = load();
        const d = median(row.sweeps);
        const perBmc = (median(row.serverCpu) + median(row.childCpu)) / n;
        const targetSweep = n === 20 ? 100 : 1000;
        const pass = d <= targetSweep && perBmc <= 3;
        lines.push(
          `| ${n} | ${row.design} | **${d.toFixed(0)} ms** (${row.sweeps.map((x) => x.toFixed(0)).join(", ")}) | ${median(row.serverCpu).toFixed(1)} ms | ${median(row.childCpu).toFixed(0)} ms | **${perBmc.toFixed(2)} ms** | ≤ ${targetSweep} ms, ≤ 3 ms | ${pass ? "PASS" : "miss"}${row.note ? ` · ${row.note}` : ""} |`,
        );
      }
    }
    lines.push("", `Load average before: ${loadBefore}; during the last row: ${loadDuring}.`);

    // Power-on: API call → confirmed "on".
    const h = createHarness({ oob: { spacingMs: SPACING_MS } });
    const { id } = await h.operator.machines.enroll(machineInput(1, { bmc: { address: "127.0.0.1", port: sims[0]!.port, username: SIM_USER, password: sims[0]!.password } }));
    const ons: number[] = [];
    for (let r = 0; r < 5; r++) {
      sims[0]!.ipmitool(["chassis", "power", "off"]);
      await new Promise((res) => setTimeout(res, SPACING_MS));
      const t = performance.now();
      const [res] = await h.operator.oob.power({ selection: { ids: [id] }, action: "on" });
      if (!res!.ok) throw new Error(res!.error);
      ons.push(performance.now() - t);
    }
    h.close();
    lines.push("", `Power-on from the API call to the confirmed "on" (median of 5): **${median(ons).toFixed(0)} ms** (${ons.map((x) => x.toFixed(0)).join(", ")}; spacing ${SPACING_MS} ms + one call is the floor).`);
  } finally {
    await Promise.all(sims.map((s) => s.stop()));
  }

  // 10,000 machines on the fake driver: the first sweep writes every last-seen time, later ones only changes.
  const hf = createHarness();
  await enrollMany(
    hf.domain,
    Array.from({ length: 10_000 }, (_, i) => machineEnrollSchema.parse(machineInput(i + 1, { bmc: { driver: "fake", address: `10.${1 + (i % 200)}.${Math.floor(i / 200)}.1`, port: 623, username: "admin", password: "pw" } }))),
    "bench",
  );
  const fake: { first?: number; cpu: number[]; wall: number[]; written: number[] } = { cpu: [], wall: [], written: [] };
  for (let r = 0; r <= rounds; r++) {
    const c0 = process.cpuUsage();
    const st = await sweepPower(hf.domain);
    const c = cpuMs(process.cpuUsage(c0));
    if (st.machines !== 10_000 || st.failed) throw new Error(`fake sweep: ${JSON.stringify(st)}`);
    if (r === 0) {
      fake.first = c;
      continue;
    }
    fake.cpu.push(c);
    fake.wall.push(st.durationMs);
    fake.written.push(st.written);
  }
  // Nothing syncable: the same fleet with every state skipped, and a fleet without BMCs.
  await hf.admin.oob.updateSyncSettings({ skipStates: ["enrolled"] });
  const skipped: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    const st = await sweepPower(hf.domain);
    if (st.machines !== 0) throw new Error("skipStates did not skip");
    skipped.push(cpuMs(process.cpuUsage(c0)));
  }
  hf.close();
  const hi = createHarness();
  await enrollMany(hi.domain, Array.from({ length: 10_000 }, (_, i) => machineEnrollSchema.parse(machineInput(i + 1))), "bench");
  const idle: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    await sweepPower(hi.domain);
    idle.push(cpuMs(process.cpuUsage(c0)));
  }
  hi.close();
  lines.push(
    "",
    "| 10,000 machines | CPU per sweep, median of 5 (all rounds) | target | |",
    "|---|---|---|---|",
    `| fake driver, steady state (rows written: ${fake.written.join(", ")}; wall ${median(fake.wall).toFixed(0)} ms) | **${median(fake.cpu).toFixed(0)} ms** (${fake.cpu.map((x) => x.toFixed(0)).join(", ")}) | ≤ 300 ms | ${median(fake.cpu) <= 300 ? "PASS" : "miss"} |`,
    `| fake driver, first sweep (writes all 10,000 last-seen times) | ${fake.first!.toFixed(0)} ms | — | |`,
    `| nothing syncable: all in a skipped state | **${median(skipped).toFixed(1)} ms** (${skipped.map((x) => x.toFixed(1)).join(", ")}) | ≤ 10 ms | ${median(skipped) <= 10 ? "PASS" : "miss"} |`,
    `| nothing syncable: no BMCs | **${median(idle).toFixed(1)} ms** (${idle.map((x) => x.toFixed(1)).join(", ")}) | ≤ 10 ms | ${median(idle) <= 10 ? "PASS" : "miss"} |`,
  );

  const header = [`## power (issues 3, 15) — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0]?.model}), Node ${process.versions.node}`, ""];
  const section = [
    ...header,
    `\`npm run bench:power\`: ipmi_sim BMCs on 127.0.0.1, lanplus cipher suite 3, sweep concurrency ${CONCURRENCY}, per-BMC spacing ${SPACING_MS} ms. CPU per BMC per sweep = (server process CPU + ipmitool children CPU) ÷ BMCs; ipmi_sim's own CPU (the BMC side) is not counted for any design.`,
    "",
    ...lines,
  ].join("\n");
  console.log(section);
  writeSection(path.resolve("docs/BENCHMARKS.md"), "power", section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
