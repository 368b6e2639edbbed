import { jobsOut, okOut } from "../outputs";
import { eq } from "drizzle-orm";
import { z } from "zod";
import type { JobKind, JobState } from "../../../lib/jobs";
import { AppError } from "../../../lib/errors";
import { storeOf, type Store } from "../../db/store";
import { cancelJob } from "../../orchestrator/job-state";
import { jobLogs, listMachineJobs } from "../../orchestrator/jobs";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

/** Most log lines one backfill call returns; clients page on with `afterSeq` = the last seq they got. */
export const LOG_PAGE_MAX = 5000;

const jobId = z.number().int().positive();

async function getJob(store: Store, id: number) {
  const { jobs } = store.t;
  const [j] = await store.db.select().from(jobs).where(eq(jobs.id, id)).limit(1);
  if (!j) throw new AppError("NOT_FOUND", `Job ${id} does not exist`);
  return { id: j.id, machineId: j.machineId, batchId: j.batchId, kind: j.kind as JobKind, state: j.state as JobState, error: j.error };
}

/** Jobs of a machine (timeline), their log lines (backfill; live lines come over socket.io) and cancellation. */
export const jobsRouter = router({
  /** Newest first, each with its steps in group order. */
  forMachine: viewerProcedure
    .input(z.object({ machineId: z.number().int().positive(), limit: z.number().int().min(1).max(100).default(20) }))
    .output(jobsOut.forMachine)
    .query(({ ctx, input }) => listMachineJobs(storeOf(ctx.domain), input.machineId, input.limit)),
  /** Lines with seq > afterSeq in seq order (-1: from the first line); fewer than `limit` means the end for now. */
  logs: viewerProcedure
    .input(z.object({ jobId, afterSeq: z.number().int().min(-1).default(-1), limit: z.number().int().min(1).max(LOG_PAGE_MAX).default(1000) }))
    .output(jobsOut.logs)
    .query(({ ctx, input }) => jobLogs(storeOf(ctx.domain), input.jobId, input.afterSeq, input.limit)),
  /** One job's state (the CLI follows a job's log until it ends). */
  get: viewerProcedure.input(z.object({ jobId })).output(jobsOut.get).query(({ ctx, input }) => getJob(storeOf(ctx.domain), input.jobId)),
  /** Cancel a queued or running job: its open steps are cancelled and the machine goes to *_failed (abort). */
  cancel: operatorProcedure.input(z.object({ jobId })).output(okOut).mutation(async ({ ctx, input }) => {
    await cancelJob(ctx.domain, input.jobId, ctx.actor);
    return { ok: true as const };
  }),
});
