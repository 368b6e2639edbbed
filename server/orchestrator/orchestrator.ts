import { and, eq, sql } from "drizzle-orm";
import type { LogLineDto, StepState } from "../../lib/jobs";
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import { jobs, steps } from "../db/schema";
import { closeJob, type Tx } from "./job-state";
import { classify, type MachinePorts } from "./ports";
import { jsonText, prepareQueries } from "./orchestrator-queries";
import { decide, type StepOutcome } from "./retry";

type StepRow = typeof steps.$inferSelect;

export interface OrchestratorOptions {
  /** How often leases, retries and passive waits are checked (ms). */
  tickMs?: number;
  now?: () => number;
  random?: () => number;
}

/**
 * Passive steps wait for something outside (the agent booting, the installer finishing) and run nothing: each ends
 * when its event, recorded in a column of its job, has happened — the agent's lookup (`jobs.agent_seen_at`) or the
 * installer's report (`jobs.install_done_at`).
 */
const WAIT_EVENTS = { wait_agent: "agentSeenAt", wait_install: "installDoneAt" } as const;
type PassiveStep = keyof typeof WAIT_EVENTS;
type WaitEvent = (typeof WAIT_EVENTS)[PassiveStep];
const PASSIVE = new Set<string>(Object.keys(WAIT_EVENTS));

/**
 * Runs jobs: advances each running job group by group, runs server steps, hands agent steps to agents, applies
 * timeouts (leases) and the retry policy, and finishes jobs with the machine's lifecycle transition.
 * All state is in SQLite, so a restart resumes where the last commit left off.
 */
export class Orchestrator {
  private timer: ReturnType<typeof setInterval> | null = null;
  private pendingTick = false;
  private readonly dirty = new Set<number>();
  private readonly waiters = new Map<number, Set<() => void>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Wake-ups for steps waiting out a retry backoff (so a retry starts on time, not at the next tick). */
  private readonly retryTimers = new Set<ReturnType<typeof setTimeout>>();
  private readonly now: () => number;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;

  private readonly queries: ReturnType<typeof prepareQueries>;

  constructor(
    private readonly d: Domain,
    private readonly ports: MachinePorts,
    private readonly opts: OrchestratorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.queries = prepareQueries(d.db);
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /** Resume after a (crash-)restart, then run. */
  start(): void {
    this.recover();
    this.unsubscribe = this.d.bus.subscribe((e) => {
      if (e.type !== "job.changed") return;
      if (e.state === "running") this.markDirty(e.jobId);
      else this.wake(e.jobId); // finished or cancelled: release the agent's long-poll
    });
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    this.tick();
  }

  /** Stop ticking and wait for server steps in flight (their outcomes are still recorded). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.unsubscribe?.();
    for (const set of this.waiters.values()) for (const wake of set) wake();
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Server steps that were running when the process died ran in that process: run them again (server steps are
   * idempotent: set a boot device, power on). Agent steps keep their leases: the agent may still report.
   */
  private recover(): void {
    const db = this.d.db;
    db.update(steps)
      .set({ state: "pending", leaseExpiresAt: null, attempt: sql`max(${steps.attempt} - 1, 0)` })
      .where(and(eq(steps.state, "running"), eq(steps.runner, "server")))
      .run();
    for (const j of db.select({ id: jobs.id }).from(jobs).where(eq(jobs.state, "running")).all()) this.dirty.add(j.id);
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
      this.drain();
    });
  }

  /** One full pass (the timer's): expired leases, satisfied waits, due retries, then advance every job that changed. */
  tick(): void {
    if (this.stopping) return;
    const now = this.now();
    const q = this.queries;
    for (const s of q.expired.all({ now })) {
      this.complete(s.id, s.attempt, { ok: false, transient: true, message: `${s.name} timed out after ${s.timeoutS} s` });
    }
    // Waits are normally completed by the event itself (agentSeen, installDone) or when they start; this catches
    // an event recorded in a window between the two (and what a restart left behind).
    for (const w of q.satisfiedWaits.all()) this.complete(w.id, w.attempt, { ok: true, result: waitSatisfied(w, w.name)! });
    for (const r of q.dueRetries.all({ now })) this.dirty.add(r.jobId);
    this.drain();
  }

  private drain(): void {
    if (this.stopping) return;
    const jobIds = [...this.dirty];
    this.dirty.clear();
    for (const id of jobIds) this.advance(id);
  }

  /**
   * Move one job forward: finish it, or start what its current group allows. A passive step whose event already
   * happened (the agent looked up during the power cycle) succeeds as it starts, and the next group follows in the
   * same transaction.
   */
  private advance(jobId: number): void {
    const now = this.now();
    const live: LiveEvent[] = [];
    const toRun: { step: StepRow; machineId: number }[] = [];
    let readied = false;
    const q = this.queries;
    this.d.db.transaction((tx) => {
      // Prepared on the same connection, so they read inside this transaction.
      const job = q.job.get({ id: jobId });
      if (!job || job.state !== "running") return;
      for (;;) {
        const all = q.stepsOfJob.all({ id: jobId });
        const open = all.filter((s) => s.state !== "succeeded");
        if (open.length === 0) return void live.push(...this.finish(tx, job, null));
        const group = open[0]!.group;
        const current = all.filter((s) => s.group === group);
        const failed = current.find((s) => s.state === "failed");
        if (failed) return void live.push(...this.finish(tx, job, `${failed.name}: ${failed.error ?? "failed"}`));
        const satisfied = new Set<number>();
        for (const s of current) {
          if (s.state !== "pending" || (s.nextAttemptAt && s.nextAttemptAt.getTime() > now)) continue;
          if (s.runner === "agent") {
            q.readyStep.run({ id: s.id });
            readied = true;
            live.push(stepChanged(job, s, "ready"));
            continue;
          }
          const claimed = q.claimStep.get({ id: s.id, attempt: s.attempt + 1, at: now, lease: now + s.timeoutS * 1000 });
          const result = PASSIVE.has(s.name) ? waitSatisfied(job, s.name) : null;
          if (result) {
            q.succeedStep.run({ id: s.id, at: now, result: jsonText(result) });
            live.push(stepChanged(job, claimed, "succeeded"));
            satisfied.add(s.id);
          } else {
            live.push(stepChanged(job, claimed, "running"));
            if (!PASSIVE.has(s.name)) toRun.push({ step: claimed, machineId: job.machineId });
          }
        }
        // Go on to the next group only when this pass finished the current one by itself (passive steps satisfied).
        if (!satisfied.size || !current.every((s) => s.state === "succeeded" || satisfied.has(s.id))) return;
      }
    });
    for (const e of live) this.d.bus.publish(e);
    if (readied) this.wake(jobId);
    for (const r of toRun) this.runServerStep(r.step, r.machineId);
  }

  /** Close a job (error null = success) through the job state's owner (job-state.ts closeJob). */
  private finish(tx: Tx, job: typeof jobs.$inferSelect, error: string | null): LiveEvent[] {
    return closeJob(this.d, tx, job, { state: error ? "failed" : "succeeded", error, actor: "system", lenient: true, at: new Date(this.now()) });
  }

  private runServerStep(s: StepRow, machineId: number): void {
    const p = this.execute(s, machineId).then(
      (result) => this.complete(s.id, s.attempt, { ok: true, result: result ?? undefined }),
      (err) => this.complete(s.id, s.attempt, { ok: false, ...classify(err) }),
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async execute(s: StepRow, m: number): Promise<Record<string, unknown> | void> {
    const p = s.params ?? {};
    switch (s.name) {
      case "set_boot_target":
        return this.ports.setBootTarget(m, p.target as "agent" | "installer" | "disk");
      case "set_boot_device":
        return this.ports.setBootDevice(m, p.device as "pxe" | "disk", Boolean(p.persistent));
      case "power_on":
        return this.ports.powerOn(m);
      case "power_cycle":
        return this.ports.powerCycle(m);
      case "power_off":
        return this.ports.powerOff(m);
      default:
        throw new Error(`no server handler for step ${s.name}`);
    }
  }

  /**
   * Record a step's outcome. `attempt` guards against stale reports (a timed-out attempt reporting late):
   * only the attempt that holds the lease counts. Returns whether the outcome was taken.
   */
  complete(stepId: number, attempt: number, outcome: StepOutcome): boolean {
    // After stop() the database may be closing: the outcome is lost, and the lease (or restart recovery) redoes the step.
    if (this.stopping) return false;
    const now = this.now();
    let changed = null as LiveEvent | null;
    let retryAt: number | null = null;
    const q = this.queries;
    const taken = this.d.db.transaction(() => {
      const s = q.step.get({ id: stepId });
      if (!s || s.state !== "running" || s.attempt !== attempt) return null;
      const next = decide(outcome, s, now, this.opts.random);
      const job = q.job.get({ id: s.jobId });
      if (job) changed = stepChanged(job, s, next.state);
      if (next.state === "pending") retryAt = next.nextAttemptAt;
      q.finishStep.run({
        id: stepId,
        state: next.state,
        nextAttemptAt: next.state === "pending" ? next.nextAttemptAt : null,
        finishedAt: next.state === "pending" ? null : now,
        error: next.state === "failed" ? next.error : outcome.ok ? null : outcome.message,
        result: jsonText(outcome.ok ? (outcome.result ?? null) : s.result),
      });
      return s.jobId;
    });
    if (taken === null) return false;
    if (changed) this.d.bus.publish(changed);
    if (retryAt !== null) this.wakeForRetry(taken, retryAt - now);
    this.markDirty(taken);
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
  agentSeen(jobId: number, at: number): void {
    const w = this.queries.runningWait.get({ id: jobId, name: "wait_agent" });
    if (w) this.complete(w.id, w.attempt, { ok: true, result: { agentSeenAt: at } });
    else this.markDirty(jobId);
  }

  /**
   * The installer of a machine reported completion. Recorded on the running job (jobs.install_done_at: the report
   * may come before its wait_install step runs, e.g. right after a restart; never in the job's params, which a retry
   * copies); a running wait completes now, a later one as it starts.
   * Returns false when the machine has no running job.
   */
  installDone(machineId: number): boolean {
    const job = this.d.db
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(eq(jobs.machineId, machineId), eq(jobs.state, "running")))
      .get();
    if (!job) return false;
    const at = this.now();
    this.d.db.update(jobs).set({ installDoneAt: new Date(at) }).where(eq(jobs.id, job.id)).run();
    const w = this.queries.runningWait.get({ id: job.id, name: "wait_install" });
    if (w) this.complete(w.id, w.attempt, { ok: true, result: { installDoneAt: at } });
    return true;
  }

  /** Agent side: claim the job's ready steps (leased until their timeout). */
  claimAgentSteps(jobId: number): StepRow[] {
    if (this.stopping) return [];
    const now = this.now();
    const q = this.queries;
    const { claimed, job } = this.d.db.transaction(() => {
      const ready = q.readySteps.all({ id: jobId });
      const job = ready.length ? q.job.get({ id: jobId }) : undefined;
      const rows = ready.map((s) => q.claimStep.get({ id: s.id, attempt: s.attempt + 1, at: now, lease: now + s.timeoutS * 1000 }));
      return { claimed: rows, job };
    });
    if (job) for (const s of claimed) this.d.bus.publish(stepChanged(job, s, "running"));
    return claimed;
  }

  /** Long-poll helper: resolves when the job gets ready steps or `timeoutMs` passes. */
  waitForWork(jobId: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(jobId) ?? new Set();
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
      this.waiters.set(jobId, set);
    });
  }

  /** Wake long-polls of a job (new ready steps, or the job ended). */
  wake(jobId: number): void {
    for (const w of [...(this.waiters.get(jobId) ?? [])]) w();
  }

  /** Publish ingested log lines to the job's and machine's rooms. */
  publishLogs(jobId: number, machineId: number, lines: LogLineDto[]): void {
    if (lines.length) this.d.bus.publish({ type: "log.lines", jobId, machineId, lines });
  }
}

/** The timeline's (and batch page's) live event for a step that moved (published after the commit). */
function stepChanged(job: { machineId: number; batchId: number | null }, s: StepRow, state: StepRow["state"]): LiveEvent {
  return { type: "step.changed", jobId: s.jobId, machineId: job.machineId, batchId: job.batchId, stepId: s.id, state: state as StepState };
}

/** What a passive step's wait produced, when its event already happened (null: keep waiting). */
function waitSatisfied(job: Pick<typeof jobs.$inferSelect, WaitEvent>, name: string): Record<string, unknown> | null {
  const event = WAIT_EVENTS[name as PassiveStep];
  const at = event ? job[event] : null;
  return at ? { [event]: at.getTime() } : null;
}
