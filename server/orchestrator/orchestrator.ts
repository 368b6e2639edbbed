import { and, eq, sql } from "drizzle-orm";
import type { LogLineDto } from "../../lib/jobs";
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import { greatest } from "../db/sql";
import { storeOf, type Store, type StoreTx } from "../db/store";
import { closeJob } from "./job-state";
import { classify, type MachinePorts } from "./ports";
import { defaultOwner, runServerPort, stepChanged, waitSatisfied } from "./step-kinds";
import { advanceJob, advanceOut, type AdvanceOut } from "./advance";
import { InFlight } from "./in-flight";
import { ServerStepClaims } from "./step-claims";
import { WorkWaiters } from "./work-waiters";
import { jsonText, prepareQueries, type HotQueries, type JobRow, type StepRow } from "./orchestrator-queries";
import { decide, type StepOutcome } from "./retry";

export interface OrchestratorOptions {
  /** How often leases, retries and passive waits are checked (ms). */
  tickMs?: number;
  now?: () => number;
  random?: () => number;
  /**
   * PostgreSQL: this process's name in step leases (server/db/pg/leases.ts), `<host>:<pid>` by default. Several
   * processes on one database must have different owners.
   */
  owner?: string;
  /** PostgreSQL: a server step's lease (renewed every third of it while the step runs); 15 s by default. */
  leaseMs?: number;
}

/**
 * Runs jobs: advances each running job group by group, runs server steps, hands agent steps to agents, applies
 * timeouts (leases) and the retry policy, and finishes jobs with the machine's lifecycle transition.
 * All state is in the database (the Store), so a restart resumes where the last commit left off.
 *
 * Server steps: on SQLite the one process runs them as it starts them (the step's lease is its timeout). On
 * PostgreSQL several processes may share the database: a started server step becomes `ready`, and whichever process
 * claims it (`claimSteps`, FOR UPDATE SKIP LOCKED, lease owner = this process) runs it, renewing the lease while it
 * runs; a step whose holder died is taken over when its lease lapses (server/db/pg/leases.ts).
 */
export class Orchestrator {
  private timer: ReturnType<typeof setInterval> | null = null;
  private pendingTick = false;
  private readonly dirty = new Set<number>();
  private readonly waiters = new WorkWaiters();
  private readonly inFlight: InFlight;
  /** Wake-ups for steps waiting out a retry backoff (so a retry starts on time, not at the next tick). */
  private readonly retryTimers = new Set<ReturnType<typeof setTimeout>>();
  private readonly now: () => number;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;
  private readonly store: Store;
  /** PostgreSQL: the server steps this process holds (id → attempt), renewed while they run. */
  private readonly claims: ServerStepClaims;
  private renewTimer: ReturnType<typeof setInterval> | null = null;
  readonly owner: string;
  private readonly leaseMs: number;

  private readonly queries: HotQueries;

  constructor(
    private readonly d: Domain,
    private readonly ports: MachinePorts,
    private readonly opts: OrchestratorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.inFlight = new InFlight((err) => d.log.error("orchestrator pass failed", { error: String(err) }));
    this.store = storeOf(d);
    this.queries = prepareQueries(this.store);
    this.owner = opts.owner ?? defaultOwner();
    this.leaseMs = opts.leaseMs ?? 15_000;
    this.claims = new ServerStepClaims(this.store, this.owner, this.leaseMs, (r) => {
      this.d.bus.publish(stepChanged(r, r.step, "running"));
      this.runServerStep(r.step, r.machineId);
    });
  }

  private get pg(): boolean {
    return this.store.dialect === "postgres";
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /** Resume after a (crash-)restart, then run. Resolves after the first pass. */
  start(): Promise<void> {
    this.unsubscribe = this.d.bus.subscribe((e) => {
      // A step made ready, here or by another process (the bus bridge carries its event): the agent's long-poll may
      // be held by this process.
      if (e.type === "step.changed" && e.state === "ready") return this.wake(e.jobId);
      if (e.type !== "job.changed") return;
      if (e.state === "running") this.markDirty(e.jobId);
      else this.wake(e.jobId); // finished or cancelled: release the agent's long-poll
    });
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    if (this.pg) {
      this.renewTimer = setInterval(() => void this.track(this.claims.renew(() => this.stopping)), Math.max(100, Math.floor(this.leaseMs / 3)));
      this.renewTimer.unref();
    }
    return this.track((async () => (await this.recover(), await this.tickOnce()))());
  }

  /** Stop ticking and wait for server steps and passes in flight (their outcomes are still recorded). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.unsubscribe?.();
    this.waiters.wakeAll();
    await this.inFlight.settle();
  }

  /** Keep a background promise for stop(); its failure is logged, never thrown into the event loop. */
  private track(p: Promise<unknown>): Promise<void> {
    return this.inFlight.track(p);
  }

  /**
   * SQLite: server steps that were running when the process died ran in that process: run them again (server steps
   * are idempotent: set a boot device, power on). Agent steps keep their leases: the agent may still report.
   * PostgreSQL: other processes may be running theirs; a dead process's steps are taken over when their leases lapse.
   */
  private async recover(): Promise<void> {
    const { db, t } = this.store;
    if (!this.pg) {
      await db
        .update(t.steps)
        .set({ state: "pending", leaseExpiresAt: null, attempt: sql`${greatest(this.store.dialect, sql`${t.steps.attempt} - 1`, 0)}` })
        .where(and(eq(t.steps.state, "running"), eq(t.steps.runner, "server")));
    }
    for (const j of await db.select({ id: t.jobs.id }).from(t.jobs).where(eq(t.jobs.state, "running"))) this.dirty.add(j.id);
  }

  markDirty(jobId: number): void {
    this.dirty.add(jobId);
    this.nudge();
  }

  /**
   * Advance the changed jobs soon: every change in one turn of the event loop costs one pass (per job) after the
   * loop's pending I/O. Only jobs marked dirty are read; the scans for expired leases, due retries and passive waits
   * are the timer's (tick), since every event that ends a wait or a backoff marks its job itself. Advancing a job
   * synchronously inside each step result was tried: dispatch looked faster (p95 10 ms) but timers and responses
   * queued behind it and the makespan grew by 1-2 % (bench:deploy, 3 runs each way).
   */
  nudge(): void {
    if (this.pendingTick || this.stopping) return;
    this.pendingTick = true;
    setImmediate(() => {
      this.pendingTick = false;
      void this.track(this.drain());
    });
  }

  /**
   * One full pass (the timer's): expired leases, satisfied waits, due retries, then advance every job that changed;
   * on PostgreSQL also server steps left ready or whose holder's lease lapsed.
   */
  tick(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return this.track(this.tickOnce());
  }

  private async tickOnce(): Promise<void> {
    const now = this.now();
    const q = this.queries;
    const db = this.store.db;
    for (const s of await q.expired(db, { now: q.at(now) })) {
      await this.complete(s.id, s.attempt, { ok: false, transient: true, message: `${s.name} timed out after ${s.timeoutS} s` }, { anyOwner: true });
    }
    // Waits are normally completed by the event itself (agentSeen, installDone) or when they start; this catches
    // an event recorded in a window between the two (and what a restart left behind).
    for (const w of await q.satisfiedWaits(db)) await this.complete(w.id, w.attempt, { ok: true, result: waitSatisfied(w, w.name)! });
    for (const r of await q.dueRetries(db, { now: q.at(now) })) this.dirty.add(r.jobId);
    // Several processes: a job whose group was finished by a process that died before advancing it.
    if (this.pg) for (const j of await q.stalledJobs(db)) this.dirty.add(j.id);
    await this.drain();
    if (this.pg) this.claimServerSteps();
  }

  private async drain(): Promise<void> {
    if (this.stopping) return;
    const jobIds = [...this.dirty];
    this.dirty.clear();
    let readied = false;
    for (const id of jobIds) if (await this.advance(id)) readied = true;
    if (readied) this.claimServerSteps();
  }

  /**
   * Move one job forward: finish it, or start what its current group allows. A passive step whose event already
   * happened (the agent looked up during the power cycle) succeeds as it starts, and the next group follows in the
   * same transaction. Returns whether it made server steps ready (PostgreSQL: to be claimed).
   */
  private async advance(jobId: number): Promise<boolean> {
    if (this.stopping) return false;
    const now = this.now();
    let out = advanceOut();
    await this.store.transaction(async (tx) => {
      out = advanceOut();
      // On PostgreSQL the job's row is locked: one process advances a job at a time.
      const job = await this.queries.jobForUpdate(tx, { id: jobId });
      if (!job || job.state !== "running") return;
      await this.advanceIn(tx, job, now, out);
    });
    return this.afterAdvance(jobId, out);
  }

  /** advanceJob (advance.ts) with this engine's statements and close. */
  private advanceIn(tx: StoreTx, job: JobRow, now: number, out: AdvanceOut, steps?: StepRow[]): Promise<void> {
    return advanceJob({ queries: this.queries, pg: this.pg, finish: (t, j, error) => this.finish(t, j, error) }, tx, job, now, out, steps);
  }

  /** After an advance's commit: its live events, the agent's long-poll woken, server steps run. Returns `serverReady`. */
  private afterAdvance(jobId: number, out: AdvanceOut): boolean {
    for (const e of out.live) this.d.bus.publish(e);
    if (out.readied) this.wake(jobId);
    for (const r of out.toRun) this.runServerStep(r.step, r.machineId);
    return out.serverReady;
  }

  /** Close a job (error null = success) through the job state's owner (job-state.ts closeJob). */
  private finish(tx: StoreTx, job: JobRow, error: string | null): Promise<LiveEvent[]> {
    return closeJob(this.d, tx, job, { state: error ? "failed" : "succeeded", error, actor: "system", lenient: true, at: new Date(this.now()) });
  }

  /** PostgreSQL: take ready server steps, and running ones whose holder's lease lapsed, and run them here. */
  private claimServerSteps(): void {
    if (!this.pg || this.stopping) return;
    const p = this.claims.claim(() => this.stopping);
    if (p) void this.track(p);
  }

  private runServerStep(s: StepRow, machineId: number): void {
    const p = runServerPort(this.ports, s, machineId).then(
      (result) => this.complete(s.id, s.attempt, { ok: true, result: result ?? undefined }),
      (err) => this.complete(s.id, s.attempt, { ok: false, ...classify(err) }),
    );
    void this.track(p.finally(() => this.claims.held.delete(s.id)));
  }

  /**
   * Record a step's outcome. `attempt` guards against stale reports (a timed-out attempt reporting late):
   * only the attempt that holds the lease counts. On PostgreSQL a server step leased to a process takes outcomes
   * from that process only (a former holder that comes back after a takeover changes nothing), except a timeout
   * (`anyOwner`), which any process may record. Returns whether the outcome was taken.
   */
  async complete(stepId: number, attempt: number, outcome: StepOutcome, opts: { anyOwner?: boolean } = {}): Promise<boolean> {
    // After stop() the database may be closing: the outcome is lost, and the lease (or restart recovery) redoes the step.
    if (this.stopping) return false;
    const now = this.now();
    let changed = null as LiveEvent | null;
    let retryAt: number | null = null;
    let advanced = null as AdvanceOut | null;
    const q = this.queries;
    const taken = await this.store.transaction(async (tx) => {
      changed = null;
      retryAt = null;
      advanced = null;
      // PostgreSQL: the job's row first, as every writer of a job's steps takes it, so that the outcome and the job's
      // advance are one transaction (two were BEGIN, four statements and COMMIT more per step, and a turn of the
      // event loop before the next group started). SQLite advances in the next pass (markDirty): advancing inside
      // each result made its makespan longer (see nudge).
      const job = q.jobOfStepForUpdate ? await q.jobOfStepForUpdate(tx, { id: stepId }) : undefined;
      if (q.jobOfStepForUpdate && !job) return null;
      // PostgreSQL, under the job's lock: the job's steps in one read, the advance's too. The step itself is not locked,
      // so its outcome is written only while it is still the attempt and holder read here (finishHeldStep): a lease
      // that lapsed and was taken over meanwhile (claimSteps does not take the job's lock) is not overwritten.
      let steps = job ? await q.stepsOfJob(tx, { id: job.id }) : undefined;
      const seen = steps?.find((x) => x.id === stepId);
      const s = job ? seen && { ...seen, jobMachineId: job.machineId, jobBatchId: job.batchId } : await q.stepWithJobForUpdate(tx, { id: stepId });
      if (!s || s.state !== "running" || s.attempt !== attempt) return null;
      if (s.leaseOwner !== null && s.leaseOwner !== this.owner && !opts.anyOwner) return null;
      const next = decide(outcome, s, now, this.opts.random);
      const values = {
        id: stepId,
        state: next.state,
        nextAttemptAt: next.state === "pending" ? q.at(next.nextAttemptAt) : null,
        finishedAt: next.state === "pending" ? null : q.at(now),
        error: next.state === "failed" ? next.error : outcome.ok ? null : outcome.message,
        result: jsonText(outcome.ok ? (outcome.result ?? null) : s.result),
      };
      if (steps && q.finishHeldStep) {
        const written = await q.finishHeldStep(tx, { ...values, attempt, owner: s.leaseOwner });
        if (!written) return null;
        steps = steps.map((x) => (x.id === stepId ? written : x));
      } else await q.finishStep(tx, values);
      changed = stepChanged({ machineId: s.jobMachineId, batchId: s.jobBatchId }, s, next.state);
      if (next.state === "pending") retryAt = next.nextAttemptAt;
      if (job?.state === "running" && !this.stopping) await this.advanceIn(tx, job, now, (advanced = advanceOut()), steps);
      return s.jobId;
    });
    if (taken === null) return false;
    if (changed) this.d.bus.publish(changed);
    if (retryAt !== null) this.wakeForRetry(taken, retryAt - now);
    if (advanced === null) this.markDirty(taken);
    else if (this.afterAdvance(taken, advanced)) this.claimServerSteps();
    return true;
  }

  private wakeForRetry(jobId: number, delayMs: number): void {
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      this.markDirty(jobId);
    }, Math.max(0, delayMs));
    t.unref();
    this.retryTimers.add(t);
  }

  /**
   * The job's agent looked up (jobs.agent_seen_at is set): a running wait_agent step succeeds now, rather than at
   * the next tick. One that has not started yet succeeds as it starts (advance).
   */
  async agentSeen(jobId: number, at: number): Promise<void> {
    const w = await this.queries.runningWait(this.store.db, { id: jobId, name: "wait_agent" });
    if (w) await this.complete(w.id, w.attempt, { ok: true, result: { agentSeenAt: at } });
    else this.markDirty(jobId);
  }

  /**
   * The installer of a machine reported completion. Recorded on the running job (jobs.install_done_at: the report
   * may come before its wait_install step runs, e.g. right after a restart; never in the job's params, which a retry
   * copies); a running wait completes now, a later one as it starts.
   * Returns false when the machine has no running job.
   */
  async installDone(machineId: number): Promise<boolean> {
    const { db, t } = this.store;
    const at = this.now();
    const [job] = await db
      .update(t.jobs)
      .set({ installDoneAt: new Date(at) })
      .where(and(eq(t.jobs.machineId, machineId), eq(t.jobs.state, "running")))
      .returning({ id: t.jobs.id });
    if (!job) return false;
    const w = await this.queries.runningWait(db, { id: job.id, name: "wait_install" });
    if (w) await this.complete(w.id, w.attempt, { ok: true, result: { installDoneAt: at } });
    return true;
  }

  /** Agent side: claim the job's ready steps (leased until their timeouts). */
  async claimAgentSteps(jobId: number): Promise<StepRow[]> {
    return (await this.claimAgentStepsOf(jobId)).claimed;
  }

  /**
   * claimAgentSteps, with the job's state read in the same transaction: the heartbeat answers from these alone, so no
   * query runs between the claim's commit and the answer. A query failing there (a database restart) answered 500
   * for steps already leased to the agent, which then never learned of them and they sat "running" until their
   * timeout (seen in the restart test). With `tokenHash`, nothing is claimed unless that token is still the job's
   * live one (a heartbeat after its long wait checks its token this way, in the claim's statement on PostgreSQL).
   */
  async claimAgentStepsOf(jobId: number, tokenHash: string | null = null): Promise<{ claimed: StepRow[]; jobState: string | null }> {
    if (this.stopping) return { claimed: [], jobState: null };
    const now = this.now();
    const q = this.queries;
    if (q.claimAgentReady) {
      // PostgreSQL: one statement (a transaction here was five round trips, for every heartbeat).
      const rows = (await q.claimAgentReady(this.store.db, { id: jobId, now: q.at(now), hash: tokenHash })).sort((a, b) => a.group - b.group || a.id - b.id);
      if (!rows.length) return { claimed: [], jobState: (await q.job(this.store.db, { id: jobId }))?.state ?? null };
      const claimed = rows.map(({ jobMachineId: _m, jobBatchId: _b, jobState: _s, ...step }) => step);
      for (const r of rows) this.d.bus.publish(stepChanged({ machineId: r.jobMachineId, batchId: r.jobBatchId }, r, "running"));
      return { claimed, jobState: rows[0]!.jobState };
    }
    const { claimed, job } = await this.store.transaction(async (tx) => {
      const job = await q.jobForUpdate(tx, { id: jobId });
      const live = job && (tokenHash === null || (await q.liveToken(tx, { id: jobId, hash: tokenHash })) !== undefined);
      const ready = live ? await q.readySteps(tx, { id: jobId }) : [];
      const rows: StepRow[] = [];
      for (const s of ready) {
        if (s.runner !== "agent") continue;
        rows.push(await q.claimStep(tx, { id: s.id, attempt: s.attempt + 1, at: q.at(now), lease: q.at(now + s.timeoutS * 1000) }));
      }
      return { claimed: rows, job };
    });
    if (job) for (const s of claimed) this.d.bus.publish(stepChanged(job, s, "running"));
    return { claimed, jobState: job?.state ?? null };
  }

  /** Long-poll helper: resolves when the job gets ready steps or `timeoutMs` passes. */
  waitForWork(jobId: number, timeoutMs: number, since?: number): Promise<void> {
    return this.waiters.wait(jobId, timeoutMs, since);
  }

  /** Taken before looking for a job's work: `waitForWork(…, since)` then also ends on a wake-up in between. */
  workMark(jobId: number): number {
    return this.waiters.mark(jobId);
  }

  /** Wake long-polls of a job (new ready steps, or the job ended). */
  wake(jobId: number): void {
    this.waiters.wake(jobId);
  }

  /** Publish ingested log lines to the job's and machine's rooms. */
  publishLogs(jobId: number, machineId: number, lines: LogLineDto[]): void {
    if (lines.length) this.d.bus.publish({ type: "log.lines", jobId, machineId, lines });
  }
}
