/**
 * d-i through Rackhand, timed (issue 17's installer benchmark, d-i half; bench/installer.ts times the agent
 * install, and `npm run bench:installer` reports both). The same setup as lab/di-install.vm.test.ts
 * (lab/di-lab.ts): one BIOS QEMU VM behind ipmi_sim, deployed through tRPC with the "Debian 12 (installer)"
 * profile, mirror only through Rackhand's managed apt-cacher-ng. A benchmark, not a test.
 *
 * `diRounds()` returns, per round, d-i's time to each phase it reached (from the deploy click and from the VM's
 * power-on), how the job ended, and the bytes that went through the proxy in that round. Later rounds reuse the
 * rack, Rackhand and the proxy's cache (a retry of the failed deploy, as an operator would click it), so round 2
 * shows the warm cache. On this host's mirror d-i ends at "installer components" (~20 .udebs are 404).
 *
 * Standalone: `flock /work/vm.lock npx tsx bench/installer-di.ts` prints a table. BENCH_DI_ROUNDS (default 2),
 * BENCH_DI_TIMEOUT_S (per round, default 720). Needs root and the lab's tools (scripts/install-system-deps.sh test).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { runDiDeploy, startDiLab, type DiLab } from "../lab/di-lab";

export interface DiRound {
  round: number;
  /** Phases in the order reached: seconds since the deploy click and since the VM was powered on. */
  phases: { phase: string; sinceClickS: number; sincePowerOnS: number | null }[];
  /** "failed at installer components (d-i reported … N s before)", "cancelled after partitioning", … */
  outcome: string;
  job: { state: string; error: string | null; seconds: number };
  /** Through the package proxy in this round. */
  proxy: { bytesFromUpstream: number; bytesToClients: number; requests: number; upstreamErrors: number };
  syslogLines: number;
}

export async function diRounds(o: { rounds?: number; timeoutS?: number; log?: (line: string) => void } = {}): Promise<DiRound[]> {
  const rounds = o.rounds ?? Number(process.env.BENCH_DI_ROUNDS ?? 2);
  const timeoutMs = (o.timeoutS ?? Number(process.env.BENCH_DI_TIMEOUT_S ?? 720)) * 1000;
  const log = o.log ?? ((l: string) => console.log(l));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-bench-di-"));
  const tag = crypto.randomBytes(2);
  let lab: DiLab | null = null;
  const onSignal = () => void lab?.close().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    lab = await startDiLab({ dir, prefix: `bd${tag.toString("hex").slice(0, 3)}`, net: `10.${190 + (tag[0]! % 10)}.${tag[1]}`, log });
    const out: DiRound[] = [];
    let before = { bytesFromUpstream: 0, bytesToClients: 0, requests: 0, upstreamErrors: 0 };
    for (let round = 1; round <= rounds; round++) {
      const r = await runDiDeploy(lab, timeoutMs);
      const poweredOn = r.steps.find((s) => s.name === "power_cycle" && s.finishedAt)?.finishedAt?.getTime() ?? null;
      const phases = r.phases.map((p) => ({ phase: p.phase, sinceClickS: (p.at - r.clickAt) / 1000, sincePowerOnS: poweredOn ? (p.at - poweredOn) / 1000 : null }));
      const reported = r.datagrams.find((d) => /anna\[\d+\]: .*package retrieval failed/.test(d.raw));
      const end = r.job.finishedAt?.getTime() ?? Date.now();
      const last = r.phases.at(-1)?.phase ?? "start";
      const outcome =
        r.job.state === "failed" ? `failed at ${last}${reported ? ` ${((end - reported.at) / 1000).toFixed(1)} s after d-i reported it` : ""}` : `${r.job.state} after ${last}`;
      const proxy = {
        bytesFromUpstream: r.proxy.bytesFromUpstream - before.bytesFromUpstream,
        bytesToClients: r.proxy.bytesToClients - before.bytesToClients,
        requests: r.proxy.requests - before.requests,
        upstreamErrors: r.proxy.upstreamErrors - before.upstreamErrors,
      };
      before = r.proxy;
      out.push({ round, phases, outcome, job: { state: r.job.state, error: r.job.error, seconds: (end - r.clickAt) / 1000 }, proxy, syslogLines: r.datagrams.length });
      log(`round ${round}: ${outcome}; ${phases.map((p) => `${p.phase} ${p.sinceClickS.toFixed(1)} s`).join(", ")}`);
    }
    return out;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await lab?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A Markdown table of the rounds (phases as rows, rounds as columns). */
export function diTable(rounds: DiRound[]): string {
  const names = [...new Set(rounds.flatMap((r) => r.phases.map((p) => p.phase)))];
  const cell = (r: DiRound, n: string) => {
    const p = r.phases.find((x) => x.phase === n);
    return p ? `${p.sinceClickS.toFixed(1)} s (${p.sincePowerOnS?.toFixed(1) ?? "?"} s)` : "—";
  };
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  return [
    `| d-i phase reached: since click (since power-on) | ${rounds.map((r) => `round ${r.round}`).join(" | ")} |`,
    `|---|${rounds.map(() => "---").join("|")}|`,
    ...names.map((n) => `| ${n} | ${rounds.map((r) => cell(r, n)).join(" | ")} |`),
    `| job ended | ${rounds.map((r) => `${r.job.state} at ${r.job.seconds.toFixed(1)} s`).join(" | ")} |`,
    `| outcome | ${rounds.map((r) => r.outcome).join(" | ")} |`,
    `| proxy: from upstream / to the VM | ${rounds.map((r) => `${mb(r.proxy.bytesFromUpstream)} / ${mb(r.proxy.bytesToClients)}`).join(" | ")} |`,
    `| proxy: requests / upstream errors | ${rounds.map((r) => `${r.proxy.requests} / ${r.proxy.upstreamErrors}`).join(" | ")} |`,
    `| syslog lines | ${rounds.map((r) => r.syslogLines).join(" | ")} |`,
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  diRounds()
    .then((r) => {
      console.log(`\n${diTable(r)}`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
