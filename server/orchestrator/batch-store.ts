/** Batch rows: the JSON kept in batches.params and job counts. */
import { and, count, eq, inArray } from "drizzle-orm";
import type { BatchAlert, BatchCounts, BatchSkipped } from "../../lib/batches";
import type { JobState } from "../../lib/jobs";
import { forUpdate } from "../db/sql";
import type { Store, StoreDb, StoreTx } from "../db/store";

export type Tx = StoreTx;
type Reader = Pick<StoreDb, "select">;

/** What a batch keeps beside its columns (batches.params). */
export interface BatchParams {
  /** Machines refused at creation, with the reason. */
  skipped: BatchSkipped[];
  /** Finished/failed counts at the last resume: the threshold judges only what finished after it. */
  baseline: { finished: number; failed: number };
  /** An alert was raised since the last resume (raised once per window). */
  alerted: boolean;
  alert: BatchAlert | null;
}

export const emptyParams = (): BatchParams => ({ skipped: [], baseline: { finished: 0, failed: 0 }, alerted: false, alert: null });

export function paramsOf(row: { params: unknown }): BatchParams {
  return { ...emptyParams(), ...((row.params ?? {}) as Partial<BatchParams>) };
}

export const zeroCounts = (): BatchCounts => ({ total: 0, queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 });

/** Job counts per state for some batches. */
export async function countJobs(store: Store, db: Reader, batchIds: number[]): Promise<Map<number, BatchCounts>> {
  const { jobs } = store.t;
  const out = new Map<number, BatchCounts>(batchIds.map((id) => [id, zeroCounts()]));
  if (!batchIds.length) return out;
  const rows = await db
    .select({ batchId: jobs.batchId, state: jobs.state, n: count() })
    .from(jobs)
    .where(inArray(jobs.batchId, batchIds))
    .groupBy(jobs.batchId, jobs.state);
  for (const r of rows) {
    const c = out.get(r.batchId!);
    if (!c) continue;
    c[r.state as JobState] += r.n;
    c.total += r.n;
  }
  return out;
}

export async function countBatch(store: Store, db: Reader, batchId: number): Promise<BatchCounts> {
  return (await countJobs(store, db, [batchId])).get(batchId) ?? zeroCounts();
}

/** Write a batch's params (read-modify-write inside the caller's transaction, the row locked on PostgreSQL). */
export async function updateParams(store: Store, tx: Tx, batchId: number, patch: (p: BatchParams) => BatchParams): Promise<BatchParams> {
  const { batches } = store.t;
  const q = tx.select({ params: batches.params }).from(batches).where(eq(batches.id, batchId));
  const [row] = await forUpdate(store.dialect, q);
  const next = patch(paramsOf(row ?? { params: null }));
  await tx
    .update(batches)
    .set({ params: next as unknown as Record<string, unknown> })
    .where(eq(batches.id, batchId));
  return next;
}

/** Queued job ids of a batch, oldest first. */
export function queuedJobs(store: Store, db: Reader, batchId: number, limit: number) {
  const { jobs } = store.t;
  return db
    .select({ id: jobs.id, machineId: jobs.machineId, createdBy: jobs.createdBy })
    .from(jobs)
    .where(and(eq(jobs.batchId, batchId), eq(jobs.state, "queued")))
    .orderBy(jobs.id)
    .limit(limit);
}
