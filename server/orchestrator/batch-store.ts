/** Batch rows: the JSON kept in batches.params and job counts. */
import { and, eq, inArray, sql } from "drizzle-orm";
import type { BatchAlert, BatchCounts, BatchSkipped } from "../../lib/batches";
import type { JobState } from "../../lib/jobs";
import type { Db } from "../db/client";
import { batches, jobs } from "../db/schema";

export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
type Reader = Pick<Db, "select">;

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
export function countJobs(db: Reader, batchIds: number[]): Map<number, BatchCounts> {
  const out = new Map<number, BatchCounts>(batchIds.map((id) => [id, zeroCounts()]));
  if (!batchIds.length) return out;
  const rows = db
    .select({ batchId: jobs.batchId, state: jobs.state, n: sql<number>`count(*)` })
    .from(jobs)
    .where(inArray(jobs.batchId, batchIds))
    .groupBy(jobs.batchId, jobs.state)
    .all();
  for (const r of rows) {
    const c = out.get(r.batchId!);
    if (!c) continue;
    c[r.state as JobState] += r.n;
    c.total += r.n;
  }
  return out;
}

export function countBatch(db: Reader, batchId: number): BatchCounts {
  return countJobs(db, [batchId]).get(batchId) ?? zeroCounts();
}

/** Write a batch's params (read-modify-write inside the caller's transaction). */
export function updateParams(tx: Tx, batchId: number, patch: (p: BatchParams) => BatchParams): BatchParams {
  const row = tx.select({ params: batches.params }).from(batches).where(eq(batches.id, batchId)).get();
  const next = patch(paramsOf(row ?? { params: null }));
  tx.update(batches).set({ params: next as unknown as Record<string, unknown> }).where(eq(batches.id, batchId)).run();
  return next;
}

/** Queued job ids of a batch, oldest first. */
export function queuedJobs(db: Reader, batchId: number, limit: number) {
  return db
    .select({ id: jobs.id, machineId: jobs.machineId, createdBy: jobs.createdBy })
    .from(jobs)
    .where(and(eq(jobs.batchId, batchId), eq(jobs.state, "queued")))
    .orderBy(jobs.id)
    .limit(limit)
    .all();
}
