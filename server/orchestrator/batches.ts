/**
 * Batches: bulk work as one row plus one queued job per machine. These functions record what the operator asked
 * for and return; the BatchRunner (batch-runner.ts) starts queued jobs under the concurrency limit, judges the
 * failure threshold and raises alerts.
 */
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import {
  BATCH_KIND_LABELS,
  CONFIRM_BATCH_KINDS,
  POWER_BATCH_KINDS,
  type BatchCreated,
  type BatchDetailDto,
  type BatchDto,
  type BatchKind,
  type BatchMachineDto,
  type BatchSkipped,
  type BatchState,
  type batchCreateSchema,
} from "../../lib/batches";
import { AppError } from "../../lib/errors";
import { plural } from "../../lib/format";
import type { JobKind, JobState } from "../../lib/jobs";
import type { LiveEvent } from "../../lib/live-events";
import type { z } from "zod";
import type { Actor, Domain } from "../context";
import type { OsProfile } from "../db/schema";
import { forUpdate } from "../db/sql";
import { savepoint, sqliteDbOf, storeOf, type Store, type StoreTx } from "../db/store";
import { loadNetbootSettings } from "../netboot/settings";
import type { NetbootSettings } from "../../lib/netboot";
import { recordStoreEvent } from "../events/audit";
import { countBatch, countJobs, emptyParams, paramsOf, updateParams } from "./batch-store";
import { cancelJob, cancelQueuedJobs, stepRows } from "./job-state";
import { allocatePending, machinesWithPendingAddresses } from "../subnets/allocate";
import { deployParamsFor, reinstallKind } from "./jobs";

type CreateInput = z.output<typeof batchCreateSchema>;
interface Planned {
  machineId: number;
  kind: JobKind;
  params: Record<string, unknown>;
}

/** What building every acting machine's job reads once: OS profiles by id, the netboot settings. */
interface JobContext {
  profiles: Map<number, OsProfile>;
  /** Read only for deploys. */
  settings: NetbootSettings | undefined;
  /** Machines with an auto interface still waiting for its address: allocated with the job. */
  pending: Set<number>;
}

/**
 * The job an acting machine gets (its kind and parameters), or why none can be built (a deploy whose profile cannot
 * render). Whether the machine acts at all is the plan's decision (server/operator/plan.ts), not made again here.
 * Runs inside `tx`, the transaction that creates the batch.
 */
async function jobFor(store: Store, tx: StoreTx, kind: BatchKind, m: { id: number; osProfileId: number | null }, ctx: JobContext): Promise<Planned | string> {
  if (POWER_BATCH_KINDS.includes(kind)) return { machineId: m.id, kind: kind as JobKind, params: {} };
  try {
    if (kind === "inspect") return { machineId: m.id, kind: "inspect", params: {} };
    if (kind === "clean") return { machineId: m.id, kind: "clean", params: { wipeMode: "signatures" } };
    const profile = m.osProfileId === null ? null : (ctx.profiles.get(m.osProfileId) ?? null);
    const plan = () => deployParamsFor(store, tx, m.id, profile, ctx.settings);
    // With addresses to allocate, in a savepoint: a machine skipped after its addresses were allocated keeps none.
    const p = ctx.pending.has(m.id)
      ? await savepoint(store, tx, async () => {
          await allocatePending(store, tx, m.id);
          return plan();
        })
      : await plan();
    return { machineId: m.id, kind: kind === "reinstall" ? reinstallKind(p.kind) : p.kind, params: p.params };
  } catch (err) {
    if (err instanceof AppError) return err.message;
    throw err;
  }
}

/**
 * The machines of a batch as the operator layer's plan decided them (server/operator/plan.ts): who acts, with
 * which OS profile (deploy and reinstall), and who is skipped with the reason.
 */
export interface DecidedBatch {
  acting: { machineId: number; osProfileId: number | null }[];
  skipped: BatchSkipped[];
}

/**
 * Create a batch as the operator's confirmed plan decided it (server/operator/bulk-actions.ts startBatch): every
 * acting machine gets a queued job, the skipped ones are kept on the batch with the plan's reason. The plan owns
 * the act/skip decision; this only builds the jobs. Destructive and power-cutting kinds (CONFIRM_BATCH_KINDS) need
 * `confirmCount` equal to the number of machines that act.
 * @throws AppError VALIDATION (wrong confirmation, no machine can take the action), CONFLICT
 */
export async function createBatch(d: Domain, input: CreateInput, actor: Actor, decided: DecidedBatch): Promise<BatchCreated> {
  const store = storeOf(d);
  const { batches, machines, osProfiles } = store.t;
  const ids = decided.acting.map((a) => a.machineId);
  const rows: { id: number; name: string; osProfileId: number | null }[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    rows.push(...(await store.db.select({ id: machines.id, name: machines.name, osProfileId: machines.osProfileId }).from(machines).where(inArray(machines.id, chunk))));
  }
  const byId = new Map(rows.map((r) => [r.id, r]));
  // Deploy and reinstall with the OS profile chosen for the selection: recorded on the machine with its job (a retry
  // deploys the machine's profile again).
  const profileChanges: { machineId: number; osProfileId: number }[] = [];
  for (const a of decided.acting) {
    const m = byId.get(a.machineId);
    if (!m || a.osProfileId === null || a.osProfileId === m.osProfileId) continue;
    profileChanges.push({ machineId: a.machineId, osProfileId: a.osProfileId });
    m.osProfileId = a.osProfileId;
  }
  const live: LiveEvent[] = [];
  const label = BATCH_KIND_LABELS[input.kind];
  // The jobs are planned in the transaction that creates them: addresses still pending on auto interfaces are
  // allocated here (server/subnets/allocate.ts), and kept only with the batch.
  const { batchId, queued, skipped } = await store.transaction(async (tx) => {
    live.length = 0;
    const deploys = input.kind === "deploy" || input.kind === "reinstall";
    const ctx: JobContext = {
      profiles: new Map((await tx.select().from(osProfiles)).map((p) => [p.id, p])),
      settings: deploys ? await loadNetbootSettings(store, tx) : undefined,
      pending: deploys ? await machinesWithPendingAddresses(store, tx, ids) : new Set(),
    };
    const planned: Planned[] = [];
    const skipped: BatchSkipped[] = [...decided.skipped];
    for (const id of ids) {
      const m = byId.get(id);
      const p = m ? await jobFor(store, tx, input.kind, m, ctx) : "does not exist";
      if (typeof p === "string") skipped.push({ machineId: id, name: m?.name ?? `#${id}`, error: p });
      else planned.push(p);
    }
    const acting = decided.acting.length;
    if (CONFIRM_BATCH_KINDS.includes(input.kind) && planned.length && input.confirmCount !== acting) {
      throw new AppError("VALIDATION", `Type the number of machines that will act (${acting}) to confirm`, [
        { field: "confirmCount", message: `${acting} of the ${ids.length + decided.skipped.length} selected machines will act` },
      ]);
    }
    if (!planned.length) {
      throw new AppError("VALIDATION", `No machine in the selection can take "${label}": ${skipped[0]!.name} ${skipped[0]!.error}`);
    }
    const now = new Date();
    const [b] = await tx
      .insert(batches)
      .values({
        kind: input.kind,
        concurrency: input.concurrency,
        failureThreshold: input.failureThresholdPct,
        state: "running",
        params: { ...emptyParams(), skipped },
        createdBy: actor,
        createdAt: now,
      })
      .returning({ id: batches.id });
    const planIds = new Set(planned.map((p) => p.machineId));
    for (const c of profileChanges) {
      if (planIds.has(c.machineId)) await tx.update(machines).set({ osProfileId: c.osProfileId, updatedAt: now }).where(eq(machines.id, c.machineId));
    }
    // The partial unique index (one queued/running job per machine) refuses a machine that got a job meanwhile.
    await insertJobs(store, tx, b!.id, planned, actor, now);
    const ev = await recordStoreEvent(store, tx, {
      actor,
      kind: "batch.created",
      message: `Batch ${b!.id}: ${label} of ${plural(planned.length, "machine")} (concurrency ${input.concurrency}, pause above ${input.failureThresholdPct}% failed)${skipped.length ? `; ${skipped.length} skipped` : ""}`,
      payload: { batchId: b!.id, kind: input.kind, queued: planned.length, skipped: skipped.length },
    });
    live.push({ type: "batch.changed", batchId: b!.id, state: "running" }, { type: "event.created", event: ev });
    return { batchId: b!.id, queued: planned.length, skipped };
  });
  for (const e of live) d.bus.publish(e);
  return { batchId, queued, skipped };
}

/**
 * Insert a batch's queued jobs and their steps (inside the caller's transaction).
 * - SQLite: one prepared statement per table, run per row: building drizzle's SQL for multi-row inserts cost ~0.3 ms
 *   a job (most of a 1,000-machine batch's creation, with the event loop blocked; bench:deploy).
 * - PostgreSQL: multi-row inserts of 500 rows (a round trip per row would cost more).
 */
async function insertJobs(store: Store, tx: StoreTx, batchId: number, planned: Planned[], actor: Actor, now: Date): Promise<void> {
  const { jobs, steps } = store.t;
  if (store.dialect === "sqlite") {
    const raw = sqliteDbOf(store) as unknown as StoreTx;
    const ph = (name: string) => sql.placeholder(name);
    type Prepared = { get(p: Record<string, unknown>): { id: number }; run(p: Record<string, unknown>): void };
    // SQLite's hot path: statements prepared once per batch on the Store's connection (inside this transaction).
    // eslint-disable-next-line no-restricted-syntax -- the batch insert is SQLite's hot path: prepared once per batch, not rebuilt per job
    const prepare = (q: unknown) => (q as { prepare(): Prepared }).prepare();
    const insertJob = prepare(
      raw
        .insert(jobs)
        .values({ machineId: ph("machineId"), batchId, kind: ph("kind"), state: "queued", params: ph("params"), createdBy: actor, createdAt: now })
        .returning({ id: jobs.id }),
    );
    const insertStep = prepare(
      raw.insert(steps).values({
        jobId: ph("jobId"),
        group: ph("group"),
        name: ph("name"),
        runner: ph("runner"),
        params: ph("params"),
        state: "pending",
        maxAttempts: ph("maxAttempts"),
        timeoutS: ph("timeoutS"),
        backoffBaseMs: ph("backoffBaseMs"),
        backoffMaxMs: ph("backoffMaxMs"),
      }),
    );
    for (const p of planned) {
      const job = insertJob.get({ machineId: p.machineId, kind: p.kind, params: p.params });
      for (const r of stepRows(job.id, p.kind, p.params)) insertStep.run(r);
    }
    return;
  }
  for (let i = 0; i < planned.length; i += 500) {
    const chunk = planned.slice(i, i + 500);
    const made = await tx
      .insert(jobs)
      .values(chunk.map((p) => ({ machineId: p.machineId, batchId, kind: p.kind, state: "queued", params: p.params, createdBy: actor, createdAt: now })))
      .returning({ id: jobs.id, machineId: jobs.machineId });
    const idOf = new Map(made.map((j) => [j.machineId, j.id]));
    const rows = chunk.flatMap((p) => stepRows(idOf.get(p.machineId)!, p.kind, p.params));
    for (let k = 0; k < rows.length; k += 500) await tx.insert(steps).values(rows.slice(k, k + 500));
  }
}

type BatchRow = Store["t"]["batches"]["$inferSelect"];

function toDto(b: BatchRow, counts: BatchDto["counts"]): BatchDto {
  const p = paramsOf(b);
  return {
    id: b.id,
    kind: b.kind as BatchKind,
    state: b.state as BatchState,
    concurrency: b.concurrency,
    failureThresholdPct: b.failureThreshold,
    createdBy: b.createdBy,
    createdAt: b.createdAt.getTime(),
    finishedAt: b.finishedAt?.getTime() ?? null,
    counts,
    skipped: p.skipped.length,
    alert: p.alert,
  };
}

/** Batches, newest first, with their job counts. */
export async function listBatches(store: Store, opts: { state?: BatchState; limit: number }): Promise<BatchDto[]> {
  const { batches } = store.t;
  const rows = await store.db
    .select()
    .from(batches)
    .where(opts.state ? eq(batches.state, opts.state) : undefined)
    .orderBy(desc(batches.id))
    .limit(opts.limit);
  const counts = await countJobs(store, store.db, rows.map((r) => r.id));
  return rows.map((r) => toDto(r, counts.get(r.id)!));
}

/** One batch with a row per machine (job state, current step, error). @throws AppError NOT_FOUND */
export async function getBatch(store: Store, id: number): Promise<BatchDetailDto> {
  const { batches, jobs, machines, steps } = store.t;
  const db = store.db;
  const b = await loadBatch(store, db, id);
  const rows = await db
    .select({ job: jobs, name: machines.name, mstate: machines.state, power: machines.powerState })
    .from(jobs)
    .innerJoin(machines, eq(machines.id, jobs.machineId))
    .where(eq(jobs.batchId, id))
    .orderBy(asc(machines.name));
  const runningIds = rows.filter((r) => r.job.state === "running").map((r) => r.job.id);
  const current = new Map<number, BatchMachineDto["currentStep"]>();
  for (let i = 0; i < runningIds.length; i += 500) {
    const open = await db
      .select({ jobId: steps.jobId, group: steps.group, name: steps.name, attempt: steps.attempt, maxAttempts: steps.maxAttempts, state: steps.state })
      .from(steps)
      .where(and(inArray(steps.jobId, runningIds.slice(i, i + 500)), inArray(steps.state, ["pending", "ready", "running"])))
      .orderBy(asc(steps.group), asc(steps.id));
    const byJob = new Map<number, typeof open>();
    for (const s of open) byJob.set(s.jobId, [...(byJob.get(s.jobId) ?? []), s]);
    // The earliest open group is where the job is; a running step of it wins over its waiting siblings.
    for (const [jobId, list] of byJob) {
      const group = list.filter((s) => s.group === list[0]!.group);
      const s = group.find((x) => x.state === "running") ?? group[0]!;
      current.set(jobId, { name: s.name, attempt: s.attempt, maxAttempts: s.maxAttempts, state: s.state });
    }
  }
  const machinesDto: BatchMachineDto[] = rows.map((r) => ({
    machineId: r.job.machineId,
    machineName: r.name,
    machineState: r.mstate,
    powerState: r.power,
    jobId: r.job.id,
    jobState: r.job.state as JobState,
    currentStep: current.get(r.job.id) ?? null,
    error: r.job.error,
    startedAt: r.job.startedAt?.getTime() ?? null,
    finishedAt: r.job.finishedAt?.getTime() ?? null,
  }));
  void batches;
  return { ...toDto(b, await countBatch(store, db, id)), machines: machinesDto, skippedMachines: paramsOf(b).skipped };
}

/** Paused batches (the alert banner). */
export function pausedBatches(store: Store): Promise<BatchDto[]> {
  return listBatches(store, { state: "paused", limit: 20 });
}

/** A batch's row (locked for the rest of the transaction on PostgreSQL when `lock`). @throws AppError NOT_FOUND */
async function loadBatch(store: Store, db: Pick<StoreTx, "select">, id: number, lock = false): Promise<BatchRow> {
  const { batches } = store.t;
  const q = db.select().from(batches).where(eq(batches.id, id));
  const [b] = lock ? await forUpdate(store.dialect, q) : await q;
  if (!b) throw new AppError("NOT_FOUND", `Batch ${id} does not exist`);
  return b;
}

/**
 * Resume a paused batch: queued jobs start again, and the threshold judges only jobs finishing from now on.
 * @throws AppError NOT_FOUND, CONFLICT (not paused)
 */
export async function resumeBatch(d: Domain, id: number, actor: Actor): Promise<BatchDto> {
  const store = storeOf(d);
  const { batches } = store.t;
  const ev = await store.transaction(async (tx) => {
    const b = await loadBatch(store, tx, id, true);
    if (b.state !== "paused") throw new AppError("CONFLICT", `Batch ${id} is ${b.state}, not paused`);
    const c = await countBatch(store, tx, id);
    await tx.update(batches).set({ state: "running" }).where(eq(batches.id, id));
    await updateParams(store, tx, id, (p) => ({ ...p, alerted: false, baseline: { finished: c.succeeded + c.failed, failed: c.failed } }));
    return recordStoreEvent(store, tx, { actor, kind: "batch.resumed", message: `Batch ${id} resumed (${c.queued} queued)`, payload: { batchId: id } });
  });
  d.bus.publish({ type: "batch.changed", batchId: id, state: "running" });
  d.bus.publish({ type: "event.created", event: ev });
  return toDto(await loadBatch(store, store.db, id), await countBatch(store, store.db, id));
}

/**
 * Abort a running or paused batch: its queued jobs are cancelled (their machines never moved). Running jobs finish
 * unless `cancelRunning`, which cancels them like an operator's abort (machine → *_failed; nothing is powered off).
 * @throws AppError NOT_FOUND, CONFLICT (already finished or aborted)
 */
export async function abortBatch(d: Domain, id: number, cancelRunning: boolean, actor: Actor): Promise<BatchDto> {
  const store = storeOf(d);
  const { batches, jobs } = store.t;
  const reason = `batch ${id} aborted`;
  const { ev, running } = await store.transaction(async (tx) => {
    const b = await loadBatch(store, tx, id, true);
    if (b.state !== "running" && b.state !== "paused") throw new AppError("CONFLICT", `Batch ${id} is already ${b.state}`);
    const queued = await cancelQueuedJobs(store, tx, id, reason);
    await tx.update(batches).set({ state: "aborted" }).where(eq(batches.id, id));
    const running = await tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(eq(jobs.batchId, id), eq(jobs.state, "running")));
    const ev = await recordStoreEvent(store, tx, {
      actor,
      kind: "batch.aborted",
      message: `Batch ${id} aborted: ${plural(queued.length, "queued job")} cancelled; ${plural(running.length, "running job")} ${cancelRunning ? "cancelled" : "left to finish"}`,
      payload: { batchId: id, cancelled: queued.length, running: running.length, cancelRunning },
    });
    return { ev, running: running.map((r) => r.id) };
  });
  d.bus.publish({ type: "event.created", event: ev });
  if (cancelRunning) {
    for (const jobId of running) {
      try {
        await cancelJob(d, jobId, actor, reason);
      } catch (err) {
        // The job finished between the two transactions: nothing left to cancel.
        if (!(err instanceof AppError)) throw err;
      }
    }
  }
  d.bus.publish({ type: "batch.changed", batchId: id, state: "aborted" });
  return toDto(await loadBatch(store, store.db, id), await countBatch(store, store.db, id));
}
