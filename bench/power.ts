/**
 * npm run bench:power — power sync sweeps over 10, 25 and 50 ipmi_sim BMCs (duration, ipmitool calls per second,
 * server CPU), power-on latency from the API call to the confirmed state, and the sync loop's idle cost with
 * 10,000 machines that have no BMC. Prints its Markdown section and writes it into docs/BENCHMARKS.md.
 */
import path from "node:path";
import { writeSection } from "./lib/sections";
import os from "node:os";
import { machineEnrollSchema } from "../lib/schemas";
import { enrollMany } from "../server/machines/enroll";
import type { IpmitoolCall } from "../server/oob/exec";
import { sweepPower } from "../server/oob/power-sync";
import { startSims, SIM_USER, type IpmiSim } from "../server/oob/testing/ipmi-sim";
import { createHarness } from "../server/testing/harness";
import { median } from "./lib/stats";

const hex2 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");
/** A unique machine per n (the test fixtures import vitest, so not reused here). */
const machineInput = <T extends object>(n: number, extra?: T) => ({ name: `bench-${n}`, bootMac: `52:54:00:00:${hex2(n >> 8)}:${hex2(n)}`, ...extra });

const CONCURRENCY = 16;
const SPACING_MS = 100;
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

async function main() {
  const sims: IpmiSim[] = await startSims(50, "bench");
  const lines: string[] = [];
  try {
    // One ipmitool call, sequential, for the floor.
    const h0 = createHarness({ oob: { spacingMs: 0 } });
    const single: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = performance.now();
      if (sims[0]!.ipmitool(["chassis", "power", "status"]).status !== 0) throw new Error("sim 0 does not answer");
      single.push(performance.now() - t);
    }
    h0.close();
    const callMs = median(single);
    lines.push(`One \`ipmitool chassis power status\` (median of 15): **${callMs.toFixed(0)} ms**.`, "");
    lines.push(`| BMCs | concurrency | floor (BMCs ÷ conc × call) | sweep median of 5 | ratio | ipmitool calls/s | server CPU per sweep |`, "|---|---|---|---|---|---|---|");
    for (const n of [10, 25, 50]) {
      const calls: IpmitoolCall[] = [];
      const h = createHarness({ oob: { spacingMs: SPACING_MS }, observe: (c) => calls.push(c) });
      for (const [i, s] of sims.slice(0, n).entries()) {
        await h.operator.machines.enroll(machineInput(i + 1, { bmc: { address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password } }));
      }
      await sweepPower(h.domain, CONCURRENCY); // warm-up
      const durations: number[] = [];
      const cpus: number[] = [];
      for (let r = 0; r < 5; r++) {
        // Spacing applies between commands to the same BMC; wait it out so each sweep starts clean.
        await new Promise((res) => setTimeout(res, SPACING_MS));
        calls.length = 0;
        const c0 = process.cpuUsage();
        const st = await sweepPower(h.domain, CONCURRENCY);
        cpus.push(cpuMs(process.cpuUsage(c0)));
        if (st.failed) throw new Error(`sweep failed for ${st.failed} BMCs`);
        durations.push(st.durationMs);
      }
      const d = median(durations);
      const floor = Math.ceil(n / CONCURRENCY) * callMs;
      lines.push(`| ${n} | ${CONCURRENCY} | ${floor.toFixed(0)} ms | ${d.toFixed(0)} ms | ${(d / floor).toFixed(2)}× | ${((n / d) * 1000).toFixed(0)} | ${median(cpus).toFixed(0)} ms |`);
      h.close();
    }

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
    lines.push("", `Power-on from the API call to the confirmed "on" (median of 5): **${median(ons).toFixed(0)} ms** (target: spacing ${SPACING_MS} ms + 200 ms = ${SPACING_MS + 200} ms).`);

    // Idle cost: 10,000 machines without a BMC.
    const hi = createHarness();
    enrollMany(hi.domain, Array.from({ length: 10_000 }, (_, i) => machineEnrollSchema.parse(machineInput(i + 1))), "bench");
    const c0 = process.cpuUsage();
    const idle = await sweepPower(hi.domain, CONCURRENCY);
    const idleCpu = cpuMs(process.cpuUsage(c0));
    hi.close();
    lines.push(`Sync loop idle cost, 10,000 machines without a BMC: **${idleCpu.toFixed(1)} ms CPU per interval** (${idle.machines} BMCs swept; target ≤ 500 ms).`);
  } finally {
    await Promise.all(sims.map((s) => s.stop()));
  }
  const header = [`## power (issue 3) — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, Node ${process.versions.node}`, ""];
  const section = [...header, `\`npm run bench:power\`: ipmi_sim BMCs on 127.0.0.1, lanplus cipher suite 3, sweep concurrency ${CONCURRENCY}, per-BMC spacing ${SPACING_MS} ms.`, "", ...lines].join("\n");
  console.log(section);
  writeSection(path.resolve("docs/BENCHMARKS.md"), "power", section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
