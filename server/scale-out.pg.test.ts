/**
 * Issue 16's multi-process tests. The first: three Rackhand server processes (`server/main.ts`, real child processes) on one
 * PostgreSQL that this test starts, a bulk reinstall of 200 machines driven by simulated agents speaking the real
 * agent HTTP protocol through a round-robin "load balancer", and one process killed with SIGKILL in the middle.
 *
 * What is simulated: the agents (server/demo/sim-agent.ts, as bench:deploy's) and the BMCs (the fake driver; each
 * process has its own in-memory chassis, and power sync is off so they never disagree). What is real: the server
 * processes, PostgreSQL, step leases and their takeover, the bus bridge (LISTEN/NOTIFY), socket.io, HTTP.
 * The second: two processes, and PostgreSQL itself restarted (`pg_ctl restart -m fast`: every connection cut) in the
 * middle of a batch.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LiveEvent } from "../lib/live-events";
import { openStore, type Store } from "./db/store";
import { startPgCluster, type PgCluster } from "./testing/pg-cluster";
import { driveBatch as drive, login as loginTo, ScaleOutLab, seedFleet as seed, startAgents as agentsFor, startProcess as spawnProc, startReinstall as reinstall, type Fleet, type Proc } from "./testing/scale-out-lab";

const N = Number(process.env.RACKHAND_SCALE_OUT_MACHINES ?? 200);
/** Machines of the PostgreSQL-restart batch. */
const N_RESTART = Math.ceil(N / 2);
const CONCURRENCY = 40;
const STEP_MS = 100;
const LINES_PER_STEP = 5;

const started = Date.now();
/** Progress on stderr: a run that hangs says where. */
const progress = (msg: string) => process.stderr.write(`[scale-out +${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}\n`);

let cluster: PgCluster;
const lab = new ScaleOutLab(STEP_MS, LINES_PER_STEP, progress);
const { accepted } = lab;

/**
 * What both tests demand of a finished batch: every job succeeded, no machine stuck, every job's log sequence
 * numbers contiguous from 0 and every agent line there once per attempt. Returns the jobs' ids.
 */
async function expectCompleteBatch(f: Fleet, batchId: number, state: string, agentErrors: string[], group: Proc[]): Promise<number[]> {
  const { store: s, ids } = f;
  const { jobs, steps, logLines } = s.t;
  const unfinished = await s.db
    .select({ job: jobs.id, jobState: jobs.state, step: steps.id, name: steps.name, state: steps.state, attempt: steps.attempt, owner: steps.leaseOwner, expires: steps.leaseExpiresAt, next: steps.nextAttemptAt, error: steps.error })
    .from(steps)
    .innerJoin(jobs, eq(jobs.id, steps.jobId))
    .where(and(eq(jobs.batchId, batchId), inArray(jobs.state, ["queued", "running"])))
    .orderBy(steps.id);
  const tail = () => `${JSON.stringify(unfinished.slice(0, 40), null, 1)}\n` + group.map((p) => `--- ${p.name} (${p.owner})\n${p.out.slice(-40).join("")}`).join("\n");
  expect(state, tail()).toBe("finished");
  expect(agentErrors, tail()).toEqual([]);
  const batchJobs = await s.db.select({ id: jobs.id, state: jobs.state, error: jobs.error }).from(jobs).where(eq(jobs.batchId, batchId));
  expect(batchJobs).toHaveLength(ids.length);
  expect(batchJobs.filter((j) => j.state !== "succeeded"), tail()).toEqual([]);

  // No machine is stuck: all back to deployed, none with a job still open.
  const ms = await s.db.select({ id: s.t.machines.id, state: s.t.machines.state }).from(s.t.machines).where(inArray(s.t.machines.id, ids));
  expect(ms.filter((m) => m.state !== "deployed")).toEqual([]);
  const open = await s.db.select({ id: jobs.id }).from(jobs).where(and(inArray(jobs.machineId, ids), inArray(jobs.state, ["queued", "running"])));
  expect(open).toEqual([]);

  // Every log line once, sequence numbers contiguous from 0 in every job; every agent line there once per attempt.
  const jobIds = batchJobs.map((j) => j.id);
  const lines = await s.db.select({ jobId: logLines.jobId, seq: logLines.seq, stepId: logLines.stepId, text: logLines.text }).from(logLines).where(inArray(logLines.jobId, jobIds));
  const byJob = new Map<number, number[]>();
  for (const l of lines) (byJob.get(l.jobId) ?? byJob.set(l.jobId, []).get(l.jobId)!).push(l.seq);
  for (const id of jobIds) {
    const seqs = (byJob.get(id) ?? []).sort((x, y) => x - y);
    expect(seqs.length, `job ${id} has no log lines`).toBeGreaterThan(0);
    expect(seqs, `job ${id}`).toEqual(seqs.map((_, i) => i));
  }
  const agentSteps = await s.db.select({ id: steps.id, attempt: steps.attempt }).from(steps).where(and(inArray(steps.jobId, jobIds), eq(steps.runner, "agent")));
  const perStep = new Map<number, Map<string, number>>();
  for (const l of lines) {
    if (!/: simulated line \d+$/.test(l.text)) continue;
    const m = perStep.get(l.stepId!) ?? perStep.set(l.stepId!, new Map()).get(l.stepId!)!;
    m.set(l.text, (m.get(l.text) ?? 0) + 1);
  }
  for (const st of agentSteps) {
    const m = perStep.get(st.id);
    expect(m?.size, `agent step ${st.id}`).toBe(LINES_PER_STEP);
    for (const [text, n] of m!) expect(n, `step ${st.id} "${text}"`).toBe(st.attempt);
  }
  return jobIds;
}

const startProcess = (name: string, url: string) => spawnProc(lab, name, url);
const login = (base: string) => loginTo(lab, base);
const seedFleet = (s: Store, fleet: number, n: number) => seed(lab, s, fleet, n);
const startAgents = (f: Fleet, group: Proc[]) => agentsFor(lab, f, group);
const startReinstall = (proc: Proc, ids: number[]) => reinstall(lab, proc, ids, CONCURRENCY);
const driveBatch = (s: Store, batchId: number, act: (done: number) => Promise<boolean>) => drive(lab, s, batchId, act);

/** After each test: its processes stopped (SIGTERM), its store closed. */
async function endTest(s: Store): Promise<void> {
  lab.stopAll();
  await s.close();
}

beforeAll(async () => {
  cluster = await startPgCluster();
}, 60_000);

afterAll(async () => {
  lab.close();
  await cluster?.stop();
}, 60_000);

describe("several processes on one PostgreSQL", () => {
  it("three finish a bulk reinstall of 200 machines when one of them is killed with SIGKILL in the middle", async () => {
    const dbUrl = await cluster.createDatabase("rh_kill");
    const s = await openStore("/nonexistent", dbUrl, { max: 4 });
    try {
      // The processes start at once: migrations under the advisory lock, one admin, no error.
      const group = await Promise.all([startProcess("A", dbUrl), startProcess("B", dbUrl), startProcess("C", dbUrl)]);
      const [a, b, c] = group;
      progress(`processes listening: ${group.map((p) => `${p.name} ${p.url} ${p.owner}`).join(", ")}`);
      const f = await seedFleet(s, 2, N);

      // A browser on C, watching every machine.
      const cookieC = await login(c.url);
      const seenOnC: LiveEvent[] = [];
      const socket: Socket = io(c.url, { transports: ["websocket"], extraHeaders: { cookie: cookieC }, forceNew: true, reconnection: false });
      socket.on("live", (e: LiveEvent) => seenOnC.push(e));
      await new Promise<void>((resolve, reject) => {
        socket.once("connect_error", reject);
        socket.once("connect", () => resolve());
      });
      for (const id of f.ids) expect(await socket.timeout(5000).emitWithAck("subscribe", { machineId: id })).toEqual({ ok: true });

      const agents = startAgents(f, group);
      const batchId = await startReinstall(a, f.ids);

      // Kill A in the middle: a third of the jobs done, and A holding step leases right now.
      let killedAt = 0;
      let aStepsAtKill: number[] = [];
      const { steps } = s.t;
      const { state, acted } = await driveBatch(s, batchId, async (done) => {
        const heldByA = await s.db.select({ id: steps.id }).from(steps).where(and(eq(steps.state, "running"), eq(steps.leaseOwner, a.owner)));
        if (Date.now() % 5000 < 100) progress(`${done} jobs succeeded, A holds ${heldByA.length} steps, ${agents.booted.size} agents booted`);
        if (done < N / 3 || heldByA.length === 0) return false;
        aStepsAtKill = heldByA.map((x) => x.id);
        a.child.kill("SIGKILL");
        a.alive = false;
        killedAt = Date.now();
        progress(`A killed with ${done} jobs done, holding steps ${aStepsAtKill.join(" ")}`);
        return true;
      });
      expect(acted, "A was never seen holding a step lease once a third of the jobs were done").toBe(true);
      await agents.stop(state !== "finished");
      const jobIds = await expectCompleteBatch(f, batchId, state, agents.errors, group);

      // The steps A held when it died were taken over (none left running, none failed).
      const aSteps = await s.db.select({ id: steps.id, state: steps.state }).from(steps).where(inArray(steps.id, aStepsAtKill));
      for (const x of aSteps) expect(x.state).toBe("succeeded");

      // The browser on C saw what A did: A's step claims (published by A's bus, carried by the bridge) …
      // An event of A's last moments may die in its send queue with it (the bridge carries what a live process
      // sends; a browser backfills what it missed on reconnect), so only what A did 3 s or more before its death counts.
      const aClaimed = [...(agents.claimedBy.get(a.owner) ?? new Map<number, number>())];
      const aClaims = aClaimed.filter(([, at]) => at < killedAt - 3000).map(([id]) => id);
      expect(aClaims.length).toBeGreaterThan(0);
      const runningSeen = new Set(seenOnC.filter((e) => e.type === "step.changed" && e.state === "running").map((e) => (e as { stepId: number }).stepId));
      const missed = aClaims.filter((id) => !runningSeen.has(id));
      const stepEvents = (id: number) => seenOnC.filter((e) => e.type === "step.changed" && e.stepId === id).map((e) => (e as { state: string }).state);
      expect(missed, missed.map((id) => `step ${id}: seen in the database ${killedAt - new Map(aClaimed).get(id)!} ms before the kill; C saw ${stepEvents(id).join(",")}`).join("\n")).toEqual([]);
      // … and the log lines agents posted to A, 3 s or more before it died (each by its step and sequence number).
      const linesOnC = new Set<string>();
      for (const e of seenOnC) if (e.type === "log.lines") for (const l of e.lines) linesOnC.add(`${l.stepId}:${l.seq}`);
      const toA = accepted.filter((x) => x.proc === "A" && x.at < killedAt - 3000);
      expect(toA.length).toBeGreaterThan(0);
      expect(toA.flatMap((x) => x.seqs.map((q) => `${x.stepId}:${q}`)).filter((k) => !linesOnC.has(k))).toEqual([]);
      // Every job's final state reached C.
      const jobDoneOnC = new Set(seenOnC.filter((e) => e.type === "job.changed" && e.state === "succeeded").map((e) => (e as { jobId: number }).jobId));
      expect(jobIds.filter((id) => !jobDoneOnC.has(id))).toEqual([]);
      socket.close();
      expect(b.alive && c.alive).toBe(true);
    } finally {
      await endTest(s);
    }
  }, 900_000);

  it("two carry on through a PostgreSQL restart in the middle of a batch, and nothing is lost", async () => {
    const dbUrl = await cluster.createDatabase("rh_restart");
    const s = await openStore("/nonexistent", dbUrl, { max: 4 });
    try {
      const group = await Promise.all([startProcess("R1", dbUrl), startProcess("R2", dbUrl)]);
      const f = await seedFleet(s, 3, N_RESTART);
      const agents = startAgents(f, group);
      const batchId = await startReinstall(group[0], f.ids);
      let restartedAt = 0;
      const { state, acted } = await driveBatch(s, batchId, async (done) => {
        if (done < N_RESTART / 3) return false;
        progress(`restarting PostgreSQL with ${done} jobs done`);
        await cluster.restart();
        restartedAt = Date.now();
        progress("PostgreSQL is back");
        return true;
      });
      expect(acted).toBe(true);
      await agents.stop(state !== "finished");
      await expectCompleteBatch(f, batchId, state, agents.errors, group);
      // Both processes lived through it and answer /healthz from the database again.
      for (const p of group) {
        expect(p.alive, `${p.name} died:\n${p.out.slice(-30).join("")}`).toBe(true);
        const r = await fetch(`${p.url}/healthz`);
        expect(r.status).toBe(200);
        expect(await r.json()).toMatchObject({ store: "postgres" });
      }
      // Work went on after the restart: jobs finished after it.
      const after = await s.db.select({ n: sql<number>`count(*)` }).from(s.t.jobs).where(and(eq(s.t.jobs.batchId, batchId), sql`${s.t.jobs.finishedAt} > ${new Date(restartedAt)}`));
      expect(Number(after[0]!.n)).toBeGreaterThan(0);
    } finally {
      await endTest(s);
    }
  }, 900_000);
});
