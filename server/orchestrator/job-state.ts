/**
 * Job state has one owner: this module. A job is started (startJob: created running; startQueuedJob: a batch's
 * queued job given its slot), closed (closeJob: succeeded, failed or cancelled; every step it left unfinished is
 * cancelled and its agent token revoked) or cancelled by an operator or an aborted batch (cancelJob,
 * cancelQueuedJobs, both through the same close). Every move is checked against lib/jobs.ts JOB_TRANSITIONS, and
 * the machine's lifecycle transition (the job kind's action from lib/jobs.ts JOB_KIND_ACTION) is taken in the same
 * transaction. The engine (engine.ts) advances running jobs step by step and calls closeJob when one ends.
 */
import { and, eq, gt, inArray, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import {
  ACTIVE_JOB_STATES,
  JOB_KIND_ACTION,
  JOB_TRANSITIONS,
  UNFINISHED_STEP_STATES,
  movesLifecycle,
  type JobDto,
  type JobKind,
  type JobState,
} from "../../lib/jobs";
import type { LifecycleAction } from "../../lib/lifecycle";
import type { LiveEvent } from "../../lib/live-events";
import type { Actor, Domain } from "../context";
import { lockMachines, savepoint, storeOf, type Store, type StoreDb, type StoreTx, type Tables } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { processOwner } from "../db/pg/leases";
import { applyTransition } from "../machines/lifecycle";
import { JOB_KIND_SPECS, resolveParams } from "./kinds";

export type Tx = StoreTx;
type Reader = Pick<StoreDb, "select">;
type JobRow = Tables["jobs"]["$inferSelect"];

/** @throws AppError CONFLICT when the job state table has no such move */
function assertMove(job: { id: number; state: string }, to: JobState): void {
  if (!JOB_TRANSITIONS[job.state as JobState]?.includes(to)) throw new AppError("CONFLICT", `Job ${job.id} is already ${job.state}`);
}

/** The machine's lifecycle transition inside the job's transaction; its live events (publish after the commit). */
async function machineTransition(store: Store, tx: StoreTx, machineId: number, action: LifecycleAction, opts: Parameters<typeof applyTransition>[4]): Promise<LiveEvent[]> {
  return (await applyTransition(store, tx, machineId, action, opts)).live;
}

/**
 * Machines whose power or boot device an operator is changing by hand right now (per database: one per process).
 * Claimed in the same transaction as the active-job check (claimByHand), and checked by startJob in its own: a hand
 * power action and a job never hold the same machine at once.
 */
const byHand = new WeakMap<object, Map<number, string>>();

function handHeld(key: object): Map<number, string> {
  let m = byHand.get(key);
  if (!m) byHand.set(key, (m = new Map<number, string>()));
  return m;
}

/** The active (queued or running) job of a machine, if any: one per machine. */
export async function activeJob(store: Store, db: Reader, machineId: number): Promise<{ id: number; kind: string; state: string } | null> {
  const { jobs } = store.t;
  const [row] = await db
    .select({ id: jobs.id, kind: jobs.kind, state: jobs.state })
    .from(jobs)
    .where(and(eq(jobs.machineId, machineId), inArray(jobs.state, [...ACTIVE_JOB_STATES])))
    .limit(1);
  return row ?? null;
}

/**
 * Run a hand power (or boot device) action with the machine held: refused (MACHINE_BUSY, from `busy`) while it has
 * an active job, checked in one transaction with taking the hold; startJob is refused while the hold lasts.
 */
export async function withHandHold<T>(
  d: Domain,
  machineId: number,
  what: string,
  busy: (job: { id: number; kind: string; state: string }) => AppError,
  fn: () => Promise<T>,
): Promise<T> {
  await takeHandHold(d, machineId, what, busy);
  try {
    return await fn();
  } finally {
    await releaseHandHold(d, machineId);
  }
}

/** How long a hand hold lasts on PostgreSQL without its process releasing it (the process died mid-action). */
export const HAND_HOLD_LEASE_MS = 3 * 60_000;
const holdName = (machineId: number) => `hold:${machineId}`;
const HOLD_WHAT: Record<string, string> = { power: "power", "boot device": "bootdev" };
const holdWhat = (holder: string) => (holder.startsWith("bootdev@") ? "boot device" : "power");

/** PostgreSQL: the live hand hold of a machine (a lease `hold:<id>` on the database's clock), if any. */
async function leasedHold(store: Store, tx: StoreTx, machineId: number): Promise<string | null> {
  const { leases } = store.t;
  const [row] = await tx
    .select({ holder: leases.holder })
    .from(leases)
    .where(and(eq(leases.name, holdName(machineId)), gt(leases.expiresAt, sql`clock_timestamp()`)))
    .limit(1);
  return row ? holdWhat(row.holder) : null;
}

/**
 * The two halves of withHandHold, for a hand action that answers at once and finishes in the background
 * (oob.powerStart): take the hold now (refused like withHandHold), release it when the action has ended.
 * SQLite (one process): the hold is in memory, set before the active-job check, so a startJob that checked the holds
 * before has its job committed by the time the check reads (an awaited read waits for open Store transactions).
 * PostgreSQL (several processes): the hold is a lease `hold:<machine>` (holder `power@<owner>` or `bootdev@<owner>`,
 * HAND_HOLD_LEASE_MS on the database's clock), taken in one transaction with the active-job check under the
 * machine's row lock, which startJob takes too; a process that dies mid-action leaves a hold that lapses.
 * @throws AppError MACHINE_BUSY
 */
export async function takeHandHold(
  d: Domain,
  machineId: number,
  what: string,
  busy: (job: { id: number; kind: string; state: string }) => AppError,
  owner = processOwner(),
): Promise<void> {
  const store = storeOf(d);
  if (store.dialect === "postgres") {
    // Every process sees the hold: a lease on the machine, taken under its row lock with the active-job check.
    await store.transaction(async (tx) => {
      await lockMachines(tx, [machineId]);
      const hand = await leasedHold(store, tx, machineId);
      if (hand) throw new AppError("MACHINE_BUSY", `Machine ${machineId}: an operator is changing its ${hand} by hand`);
      const active = await activeJob(store, tx, machineId);
      if (active) throw busy(active);
      const { leases } = store.t;
      const lease = { name: holdName(machineId), holder: `${HOLD_WHAT[what] ?? "power"}@${owner}`, epoch: 1, expiresAt: sql`clock_timestamp() + ${HAND_HOLD_LEASE_MS} * interval '1 millisecond'` };
      await tx
        .insert(leases)
        .values(lease as unknown as typeof leases.$inferInsert)
        .onConflictDoUpdate({ target: leases.name, set: { holder: lease.holder, epoch: sql`${leases.epoch} + 1`, expiresAt: lease.expiresAt } });
    });
    return;
  }
  const held = handHeld(store);
  const hand = held.get(machineId);
  if (hand) throw new AppError("MACHINE_BUSY", `Machine ${machineId}: an operator is changing its ${hand} by hand`);
  held.set(machineId, what);
  try {
    const active =
      store.dialect === "sqlite"
        ? await activeJob(store, store.db, machineId)
        : await store.transaction(async (tx) => (await lockMachines(tx, [machineId]), activeJob(store, tx, machineId)));
    if (active) throw busy(active);
  } catch (err) {
    held.delete(machineId);
    throw err;
  }
}

export async function releaseHandHold(d: Domain, machineId: number, owner = processOwner()): Promise<void> {
  const store = storeOf(d);
  if (store.dialect === "postgres") {
    const { leases } = store.t;
    // Only this process's hold: one that lapsed and was taken by another stays.
    const mine = Object.values(HOLD_WHAT).map((w) => `${w}@${owner}`);
    await store.db.delete(leases).where(and(eq(leases.name, holdName(machineId)), inArray(leases.holder, mine)));
    return;
  }
  handHeld(store).delete(machineId);
}

export interface StartJobInput {
  machineId: number;
  kind: JobKind;
  params?: Record<string, unknown>;
  /** The lifecycle action to start with instead of the kind's (lib/jobs.ts JOB_KIND_ACTION): "retry", "reinstall". */
  action?: LifecycleAction;
}

/**
 * Start a job on a machine: the busy check, the lifecycle transition, the job and all its steps in one transaction
 * (the machine's row locked first on PostgreSQL).
 * @throws AppError MACHINE_BUSY (another active job, or power changed by hand), INVALID_TRANSITION, MACHINE_NOT_FOUND
 */
export async function startJob(d: Domain, input: StartJobInput, actor: Actor): Promise<{ jobId: number }> {
  const store = storeOf(d);
  const live: LiveEvent[] = [];
  const jobId = await store.transaction(async (tx) => {
    live.length = 0;
    return startJobIn(d, tx, input, actor, live);
  });
  for (const e of live) d.bus.publish(e);
  return { jobId };
}

/** startJob inside the caller's transaction; its live events are pushed to `live` (publish them after the commit). */
export async function startJobIn(d: Domain, tx: StoreTx, input: StartJobInput, actor: Actor, live: LiveEvent[]): Promise<number> {
  const store = storeOf(d);
  const { jobs } = store.t;
  if ((await lockMachines(tx, [input.machineId])).length === 0) {
    throw new AppError("MACHINE_NOT_FOUND", `Machine ${input.machineId} does not exist`);
  }
  const active = await activeJob(store, tx, input.machineId);
  if (active) throw new AppError("MACHINE_BUSY", `Machine ${input.machineId} already runs job ${active.id}`);
  const hand = store.dialect === "postgres" ? await leasedHold(store, tx, input.machineId) : handHeld(store).get(input.machineId);
  if (hand) throw new AppError("MACHINE_BUSY", `Machine ${input.machineId}: an operator is changing its ${hand} by hand`);
  const now = new Date();
  const action = input.action ?? JOB_KIND_ACTION[input.kind];
  if (action) live.push(...(await machineTransition(store, tx, input.machineId, action, { actor })));
  const [job] = await tx
    .insert(jobs)
    .values({ machineId: input.machineId, kind: input.kind, state: "running", params: input.params ?? {}, createdBy: actor, createdAt: now, startedAt: now })
    .returning();
  await insertSteps(store, tx, job!.id, input.kind, input.params ?? {});
  const ev = await recordStoreEvent(store, tx, {
    actor,
    machineId: input.machineId,
    kind: "job.started",
    message: `Job ${job!.id} (${input.kind}) started`,
    payload: { jobId: job!.id, kind: input.kind },
  });
  live.push(
    { type: "job.changed", jobId: job!.id, machineId: input.machineId, batchId: job!.batchId, state: job!.state as JobDto["state"] },
    { type: "event.created", event: ev },
  );
  return job!.id;
}

/**
 * Give a batch's queued job its slot: queued → running with its machine's transition (automatic: refused in
 * maintenance), in a savepoint of the caller's transaction. A refused transition closes the job as failed with the
 * reason. Returns whether the job started; its live events are pushed to `live`.
 */
export async function startQueuedJob(
  d: Domain,
  tx: Tx,
  job: { id: number; machineId: number; batchId: number; createdBy: string | null },
  action: LifecycleAction | null,
  live: LiveEvent[],
): Promise<boolean> {
  const store = storeOf(d);
  const { jobs } = store.t;
  const now = new Date();
  try {
    const moved = await savepoint(store, tx, async () => {
      assertMove({ id: job.id, state: "queued" }, "running");
      const r = action ? await machineTransition(store, tx, job.machineId, action, { actor: job.createdBy ?? "system", automatic: true }) : [];
      await tx.update(jobs).set({ state: "running", startedAt: now }).where(eq(jobs.id, job.id));
      return r;
    });
    live.push(...moved, { type: "job.changed", jobId: job.id, machineId: job.machineId, batchId: job.batchId, state: "running" });
    return true;
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    const [row] = await tx.select().from(jobs).where(eq(jobs.id, job.id)).limit(1);
    live.push(...(await closeJob(d, tx, row!, { state: "failed", error: `not started: ${err.message}`, actor: "system" })));
    return false;
  }
}

/** Insert a job's steps from its kind's spec (inside the caller's transaction). */
export async function insertSteps(store: Store, tx: Tx, jobId: number, kind: JobKind, params: Record<string, unknown>): Promise<void> {
  const rows = stepRows(jobId, kind, params);
  if (rows.length) await tx.insert(store.t.steps).values(rows);
}

/** Backoff of a step whose spec names none (as the steps table's column defaults). */
const DEFAULT_BACKOFF = { baseMs: 2000, maxMs: 60_000 };

/** The step rows of a job from its kind's spec (every column given: batches insert them with one prepared statement). */
export function stepRows(jobId: number, kind: JobKind, params: Record<string, unknown>) {
  // Steps whose `when` param is unset are left out; a group left empty goes with them (groups are renumbered).
  const groups = JOB_KIND_SPECS[kind].map((group) => group.filter((s) => !s.when || params[s.when] != null)).filter((group) => group.length > 0);
  return groups.flatMap((group, g) =>
    group.map((s) => ({
      jobId,
      group: g,
      name: s.name,
      runner: s.runner,
      params: resolveParams(s.params, params),
      state: "pending",
      maxAttempts: s.maxAttempts,
      timeoutS: s.timeoutS,
      backoffBaseMs: s.backoffBaseMs ?? DEFAULT_BACKOFF.baseMs,
      backoffMaxMs: s.backoffMaxMs ?? DEFAULT_BACKOFF.maxMs,
    })),
  );
}

/** The rows' part of closing jobs: final state, every unfinished step cancelled (lease dropped), agent tokens revoked. */
async function writeClosed(store: Store, tx: Tx, jobIds: number[], state: Exclude<JobState, "queued" | "running">, error: string | null, now: Date): Promise<void> {
  const { jobs, steps, agentTokens } = store.t;
  for (let i = 0; i < jobIds.length; i += 500) {
    const ids = jobIds.slice(i, i + 500);
    await tx.update(jobs).set({ state, error, finishedAt: now }).where(inArray(jobs.id, ids));
    await tx
      .update(steps)
      .set({ state: "cancelled", finishedAt: now, leaseExpiresAt: null, leaseOwner: null })
      .where(and(inArray(steps.jobId, ids), inArray(steps.state, UNFINISHED_STEP_STATES)));
    // The agent's token ends with its job: later calls get 401 (a long-poll already waiting answers "done").
    await tx.update(agentTokens).set({ revokedAt: now }).where(inArray(agentTokens.jobId, ids));
  }
}

const CLOSE_ACTION = { succeeded: "succeed", failed: "fail", cancelled: "abort" } as const;

export interface CloseOutcome {
  state: "succeeded" | "failed" | "cancelled";
  /** Why it failed or was cancelled (null on success). */
  error: string | null;
  actor: Actor;
  /**
   * The job ends even when its machine cannot follow (the engine: an operator moved the machine on meanwhile);
   * otherwise a refused transition throws and nothing is written.
   */
  lenient?: boolean;
  /** When it closed (the engine's clock); now by default. */
  at?: Date;
}

/**
 * Close a job (inside the caller's transaction): its final state, its unfinished steps cancelled, its agent token
 * revoked, and the machine's transition (succeed, fail, abort) when the job had moved it (running, not a power job).
 * Returns the live events to publish after the commit. @throws AppError CONFLICT (already final), INVALID_TRANSITION
 */
export async function closeJob(d: Domain, tx: Tx, job: JobRow, outcome: CloseOutcome): Promise<LiveEvent[]> {
  const store = storeOf(d);
  assertMove(job, outcome.state);
  const now = outcome.at ?? new Date();
  const live: LiveEvent[] = [];
  if (job.state === "running" && movesLifecycle(job.kind as JobKind)) {
    const action = CLOSE_ACTION[outcome.state];
    const opts = { actor: outcome.actor, reason: outcome.error ?? undefined };
    if (!outcome.lenient) live.push(...(await machineTransition(store, tx, job.machineId, action, opts)));
    else {
      try {
        live.push(...(await machineTransition(store, tx, job.machineId, action, opts)));
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        // The machine moved on meanwhile (e.g. an operator aborted it): the job still ends.
        d.log.warn("job finished but the machine's state could not follow", { jobId: job.id, error: String(err) });
      }
    }
  }
  await writeClosed(store, tx, [job.id], outcome.state, outcome.error, now);
  const message =
    outcome.state === "cancelled"
      ? `Job ${job.id} cancelled: ${outcome.error}`
      : outcome.state === "succeeded"
        ? `Job ${job.id} (${job.kind}) succeeded`
        : job.state === "queued"
          ? `Job ${job.id} ${outcome.error}`
          : `Job ${job.id} (${job.kind}) failed: ${outcome.error}`;
  const ev = await recordStoreEvent(store, tx, { actor: outcome.actor, machineId: job.machineId, kind: `job.${outcome.state}`, message, payload: { jobId: job.id } });
  live.push({ type: "job.changed", jobId: job.id, machineId: job.machineId, batchId: job.batchId, state: outcome.state }, { type: "event.created", event: ev });
  return live;
}

/**
 * Cancel a machine's active job. Steps that have not finished are cancelled; nothing is powered off by surprise
 * (a running agent is told to stop at its next heartbeat). The machine goes to *_failed via "abort" (not for a power
 * job, which never moved it). @throws AppError NOT_FOUND, CONFLICT (already final), INVALID_TRANSITION
 */
export async function cancelJob(d: Domain, jobId: number, actor: Actor, reason = "cancelled by operator"): Promise<void> {
  const store = storeOf(d);
  const { jobs } = store.t;
  const live = await store.transaction(async (tx) => {
    const [peek] = await tx.select({ machineId: jobs.machineId }).from(jobs).where(eq(jobs.id, jobId)).limit(1);
    if (!peek) throw new AppError("NOT_FOUND", `Job ${jobId} does not exist`);
    // Machines before jobs (docs/ARCHITECTURE.md, "Transactions mean the same on both").
    await lockMachines(tx, [peek.machineId]);
    const [job] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).limit(1);
    return closeJob(d, tx, job!, { state: "cancelled", error: reason, actor });
  });
  for (const e of live) d.bus.publish(e);
}

/**
 * Cancel every queued job of a batch (its machines never moved), as one bulk write without per-job events: an
 * aborted batch records one event for all of them. Returns their ids.
 */
export async function cancelQueuedJobs(store: Store, tx: Tx, batchId: number, reason: string): Promise<number[]> {
  const { jobs } = store.t;
  const ids = (
    await tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(eq(jobs.batchId, batchId), eq(jobs.state, "queued")))
  ).map((j) => j.id);
  assertMove({ id: 0, state: "queued" }, "cancelled");
  await writeClosed(store, tx, ids, "cancelled", reason, new Date());
  return ids;
}
