import { z } from "zod";
import { cancelJob } from "../../orchestrator/job-state";
import { jobLogs, listMachineJobs } from "../../orchestrator/jobs";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

/** Most log lines one backfill call returns; clients page on with `afterSeq` = the last seq they got. */
export const LOG_PAGE_MAX = 5000;

const jobId = z.number().int().positive();

/** Jobs of a machine (timeline), their log lines (backfill; live lines come over socket.io) and cancellation. */
export const jobsRouter = router({
  /** Newest first, each with its steps in group order. */
  forMachine: viewerProcedure
    .input(z.object({ machineId: z.number().int().positive(), limit: z.number().int().min(1).max(100).default(20) }))
    .query(({ ctx, input }) => listMachineJobs(ctx.domain.db, input.machineId, input.limit)),
  /** Lines with seq > afterSeq in seq order (-1: from the first line); fewer than `limit` means the end for now. */
  logs: viewerProcedure
    .input(z.object({ jobId, afterSeq: z.number().int().min(-1).default(-1), limit: z.number().int().min(1).max(LOG_PAGE_MAX).default(1000) }))
    .query(({ ctx, input }) => jobLogs(ctx.domain.db, input.jobId, input.afterSeq, input.limit)),
  /** Cancel a queued or running job: its open steps are cancelled and the machine goes to *_failed (abort). */
  cancel: operatorProcedure.input(z.object({ jobId })).mutation(({ ctx, input }) => {
    cancelJob(ctx.domain, input.jobId, ctx.actor);
    return { ok: true as const };
  }),
});
