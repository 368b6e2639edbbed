/**
 * `npm run bench:deploy -- --db postgres --processes 3` (issue 16): the bulk reinstall on one PostgreSQL this bench
 * starts, served by separate `server/main.ts` processes, three ways on the same database and fleet:
 *   1. one process;
 *   2. three processes;
 *   3. three processes, one killed with SIGKILL when half of the jobs are done.
 * The simulated agents (server/demo/sim-agent.ts, the real agent HTTP protocol) run in this process and reach the
 * servers through a round-robin balancer that moves an agent to the next live process on a refused or failed request
 * (server/testing/scale-out-lab.ts, shared with server/scale-out.pg.test.ts). Each run: one batch of every machine,
 * BENCH_CONCURRENCY jobs at a time. Reports makespan against the ideal, and CPU per job of the Rackhand processes and of
 * PostgreSQL (from /proc, so a killed process counts up to its last sample).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq, sql } from "drizzle-orm";
import { openStore, type Store } from "../server/db/store";
import { startPgCluster } from "../server/testing/pg-cluster";
import { driveBatch, ScaleOutLab, seedFleet, startAgents, startProcess, startReinstall, type Fleet, type Proc } from "../server/testing/scale-out-lab";
import { pgCpuMs, processCpuMs } from "./lib/report";
import { writeSection } from "./lib/sections";
import { median } from "./lib/stats";

const N = Number(process.env.BENCH_MACHINES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 100);
const STEP_MS = Number(process.env.BENCH_STEP_MS ?? 1000);
const LINES_PER_STEP = 5;
const started = Date.now();
const progress = (msg: string) => process.stderr.write(`[deploy-scale +${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}\n`);


interface RunResult {
  label: string;
  processes: number;
  jobP50Ms: number;
  /** Per step: median gap since the previous group ended / median run time. */
  breakdown: string;
  makespanMs: number;
  createMs: number;
  rackhandCpuMs: number;
  pgCpuMs: number;
  failed: number;
  killedAtDone: number | null;
  load: [number, number];
}

async function runOnce(lab: ScaleOutLab, s: Store, f: Fleet, dbUrl: string, postmaster: number, label: string, count: number, kill: boolean): Promise<RunResult> {
  const group: Proc[] = await Promise.all(Array.from({ length: count }, (_, i) => startProcess(lab, `${label}${i + 1}`, dbUrl)));
  progress(`${label}: ${count} process(es) listening`);
  const cpu = new Map<number, number>();
  const sampleCpu = () => {
    for (const p of group) {
      const c = p.child.pid ? processCpuMs(p.child.pid) : null;
      if (c !== null && p.alive) cpu.set(p.child.pid!, c);
    }
  };
  sampleCpu();
  const cpu0 = new Map(cpu);
  const pg0 = pgCpuMs(postmaster);
  const sampler = setInterval(sampleCpu, 250);
  const load0 = os.loadavg()[0]!;
  const agents = startAgents(lab, f, group);
  const t0 = performance.now();
  // The batch is created on the process that will be killed, as an operator's browser could be on any.
  const batchId = await startReinstall(lab, group[0]!, f.ids, CONCURRENCY);
  const createMs = performance.now() - t0;
  let killedAtDone: number | null = null;
  const { state } = await driveBatch(lab, s, batchId, async (done) => {
    if (!kill) return true;
    if (done < N / 2) return false;
    sampleCpu();
    group[0]!.child.kill("SIGKILL");
    group[0]!.alive = false;
    killedAtDone = done;
    progress(`${label}: ${group[0]!.name} killed with ${done} jobs done`);
    return true;
  });
  const makespanMs = performance.now() - t0;
  clearInterval(sampler);
  sampleCpu();
  const rackhandCpuMs = [...cpu].reduce((a, [pid, c]) => a + c - (cpu0.get(pid) ?? 0), 0);
  const pgCpu = pgCpuMs(postmaster) - pg0;
  await agents.stop(state !== "finished");
  const { jobs, steps } = s.t;
  // Where a job's time goes: per step name, the median gap since the previous group ended and the median run time.
  const rows = await s.db
    .select({ jobId: steps.jobId, group: steps.group, name: steps.name, startedAt: steps.startedAt, finishedAt: steps.finishedAt })
    .from(steps)
    .innerJoin(jobs, eq(jobs.id, steps.jobId))
    .where(eq(jobs.batchId, batchId));
  const byJob = new Map<number, typeof rows>();
  for (const x of rows) byJob.set(x.jobId, [...(byJob.get(x.jobId) ?? []), x]);
  const gaps = new Map<string, number[]>();
  const runs = new Map<string, number[]>();
  const jobMs: number[] = [];
  for (const list of byJob.values()) {
    list.sort((a, b) => a.group - b.group);
    const t = (d: Date | null) => d?.getTime() ?? NaN;
    jobMs.push(t(list.at(-1)!.finishedAt) - t(list[0]!.startedAt));
    for (let i = 0; i < list.length; i++) {
      const x = list[i]!;
      const key = `${x.group}:${x.name}`;
      (runs.get(key) ?? runs.set(key, []).get(key)!).push(t(x.finishedAt) - t(x.startedAt));
      const prev = list.filter((y) => y.group === x.group - 1);
      if (prev.length) (gaps.get(key) ?? gaps.set(key, []).get(key)!).push(t(x.startedAt) - Math.max(...prev.map((y) => t(y.finishedAt))));
    }
  }
  const steps_ = [...runs.keys()].sort((a, b) => Number(a.split(":")[0]) - Number(b.split(":")[0]));
  const breakdown = steps_.map((k) => `${k.split(":")[1]} +${Math.round(median(gaps.get(k) ?? [0]))}/${Math.round(median(runs.get(k)!))}`).join(", ");
  progress(`${label}: job p50 ${Math.round(median(jobMs))} ms; per step (gap before / run, ms medians): ${breakdown}`);
  const failed = Number((await s.db.select({ n: sql<number>`count(*)` }).from(jobs).where(and(eq(jobs.batchId, batchId), sql`${jobs.state} <> 'succeeded'`)))[0]!.n);
  lab.stopAll();
  await new Promise((r) => setTimeout(r, 1500)); // SIGTERM'd processes release their leases
  if (state !== "finished" || failed > 0 || agents.errors.length) {
    const open = await s.db
      .select({ job: jobs.id, jobState: jobs.state, machine: jobs.machineId, agentSeen: jobs.agentSeenAt, step: steps.id, group: steps.group, name: steps.name, runner: steps.runner, state: steps.state, attempt: steps.attempt, owner: steps.leaseOwner, expires: steps.leaseExpiresAt, next: steps.nextAttemptAt, started: steps.startedAt, finished: steps.finishedAt, error: steps.error })
      .from(steps)
      .innerJoin(jobs, eq(jobs.id, steps.jobId))
      .where(and(eq(jobs.batchId, batchId), sql`${jobs.state} <> 'succeeded'`))
      .orderBy(steps.id);
    const activity = await s.db.execute(sql`select pid, application_name, state, wait_event_type, wait_event, now() - xact_start as xact_age, left(query, 160) as query from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() order by xact_start nulls last`);
    const blocked = await s.db.execute(sql`select l.pid, l.locktype, l.relation::regclass::text as rel, l.mode, pg_blocking_pids(l.pid) as blockers from pg_locks l where not l.granted`);
    progress(`activity:\n${JSON.stringify(activity.rows, null, 1)}\nwaiting locks:\n${JSON.stringify(blocked.rows, null, 1)}`);
    const logs = group.map((p) => `--- ${p.name} (${p.owner}${p.alive ? "" : ", dead"})\n${p.out.slice(-30).join("")}`).join("\n");
    throw new Error(`${label}: batch ${state}, ${failed} of ${N} jobs not succeeded; agent errors: ${agents.errors.slice(0, 5).join("; ")}\n${open.map((o) => JSON.stringify(o)).join("\n")}\n${logs}`);
  }
  const r: RunResult = { label, processes: count, jobP50Ms: median(jobMs), breakdown, makespanMs, createMs, rackhandCpuMs, pgCpuMs: pgCpu, failed, killedAtDone, load: [load0, os.loadavg()[0]!] };
  progress(`${label}: makespan ${(makespanMs / 1000).toFixed(2)} s, Rackhand CPU ${Math.round(rackhandCpuMs)} ms, PostgreSQL CPU ${Math.round(pgCpu)} ms`);
  return r;
}

export async function runScaleBench(): Promise<void> {
  const cluster = await startPgCluster();
  const lab = new ScaleOutLab(STEP_MS, LINES_PER_STEP, progress);
  const postmaster = Number(fs.readFileSync(path.join(cluster.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  const dbUrl = await cluster.createDatabase("rh_scale");
  // openStore applies the migrations (under their advisory lock) before the fleet is seeded.
  const s = await openStore("/nonexistent", dbUrl, { max: 4 });
  const results: RunResult[] = [];
  try {
    const f = await seedFleet(lab, s, 4, N);
    if (process.env.BENCH_SCALE_KILL_ONLY) {
      // Diagnosis: the killed run alone, repeated (no report written).
      for (let i = 0; i < Number(process.env.BENCH_SCALE_KILL_ONLY); i++) await runOnce(lab, s, f, dbUrl, postmaster, "kill", 3, true);
      return;
    }
    results.push(await runOnce(lab, s, f, dbUrl, postmaster, "one", 1, false));
    results.push(await runOnce(lab, s, f, dbUrl, postmaster, "three", 3, false));
    results.push(await runOnce(lab, s, f, dbUrl, postmaster, "kill", 3, true));
  } finally {
    lab.close();
    await s.close();
    await cluster.stop();
  }
  // Every job: wait_agent and three agent steps of STEP_MS; the server steps (fake BMC driver) take ~0.
  const ideal = Math.ceil(N / CONCURRENCY) * 3 * STEP_MS;
  const [one, three, killed] = results as [RunResult, RunResult, RunResult];
  const pct = (ms: number) => `${((ms / ideal - 1) * 100).toFixed(1)} %`;
  const perJob = (ms: number) => `${(ms / N).toFixed(1)} ms`;
  const row = (r: RunResult) =>
    `| ${r.label === "one" ? "one process" : r.label === "three" ? "three processes" : `three, one killed (SIGKILL) at ${r.killedAtDone} of ${N} jobs done`} | ${(r.makespanMs / 1000).toFixed(2)} s | ${pct(r.makespanMs)} | ${(r.jobP50Ms / 1000).toFixed(2)} s | ${perJob(r.rackhandCpuMs)} | ${perJob(r.pgCpuMs)} | ${perJob(r.rackhandCpuMs + r.pgCpuMs)} | ${r.load[0].toFixed(1)} / ${r.load[1].toFixed(1)} |`;
  const md = [
    "## Deploy on PostgreSQL with one and three processes, and one of three killed (npm run bench:deploy -- --db postgres --processes 3)",
    "",
    `bench/deploy-scale.ts, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC. Host: ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "CPU"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.`,
    `${N} machines, one reinstall batch each run (concurrency ${CONCURRENCY}), on one PostgreSQL (Debian's, default settings, unix socket) and one database; each run starts its own \`server/main.ts\` processes (no UI, fake BMC driver, power sync off).`,
    `Simulated agents in the bench process (${STEP_MS} ms per agent step, ${LINES_PER_STEP} log lines each) reach the processes through a round-robin balancer that moves to the next live process on failure. Ideal: ⌈N/C⌉ × 3 × ${STEP_MS} ms = ${(ideal / 1000).toFixed(0)} s (agent work only).`,
    "",
    "| run | makespan | over ideal | job p50 | Rackhand CPU per job | PostgreSQL CPU per job | total CPU per job | load before / after |",
    "|---|---|---|---|---|---|---|---|",
    ...results.map(row),
    "",
    `- Three processes against one: makespan ${(three.makespanMs / one.makespanMs).toFixed(2)}× (target: no worse than one, ≤ 1.00×; ${three.makespanMs <= one.makespanMs ? "met" : "**missed**"}).`,
    `- One of three killed against three undisturbed: makespan ${(killed.makespanMs / three.makespanMs).toFixed(2)}× (target ≤ 1.2×; ${killed.makespanMs <= 1.2 * three.makespanMs ? "met" : "**missed**"}).`,
    ...results.map((r) => `- Where a job's time went (${r.label}; per step, median ms: gap since the previous group ended / run time): ${r.breakdown}.`),
    `- Creating the batch (tRPC batches.create, ${N} machines): ${results.map((r) => `${Math.round(r.createMs)} ms`).join(", ")}.`,
    "- Every job of every run succeeded (checked; a run with a failed job aborts the bench). CPU is utime+stime from /proc; PostgreSQL's includes its exited backends (the postmaster's reaped children).",
    `- The bench's own CPU (agents, balancer, the watcher that boots an agent when its job's wait_agent starts, polled every 100 ms): not in the table. Median makespan of the three: ${(median(results.map((r) => r.makespanMs)) / 1000).toFixed(2)} s.`,
  ].join("\n");
  process.stdout.write(`${md}\n`);
  writeSection(path.join(process.cwd(), "docs/BENCHMARKS.md"), "deploy-scale", md);
}
