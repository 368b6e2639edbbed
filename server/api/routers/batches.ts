import { batchesOut } from "../outputs";
import { storeOf } from "../../db/store";
import { batchAbortSchema, batchCreateSchema, batchIdSchema, batchListSchema, batchSettingsSchema } from "../../../lib/batches";
import { getBatchSettings, setBatchSettings } from "../../orchestrator/batch-settings";
import { startBatch } from "../../operator/bulk-actions";
import { abortBatch, getBatch, listBatches, pausedBatches, resumeBatch } from "../../orchestrator/batches";
import { adminProcedure, operatorProcedure, router, viewerProcedure } from "../trpc";

/** Bulk deploy/reinstall/clean/inspect as batches; the BatchRunner (started by server/app.ts) does the running. */
export const batchesRouter = router({
  create: operatorProcedure.input(batchCreateSchema).output(batchesOut.create).mutation(({ ctx, input }) => startBatch(ctx.domain, input, ctx.actor)),
  list: viewerProcedure.input(batchListSchema).output(batchesOut.list).query(({ ctx, input }) => listBatches(storeOf(ctx.domain), input)),
  get: viewerProcedure.input(batchIdSchema).output(batchesOut.get).query(({ ctx, input }) => getBatch(storeOf(ctx.domain), input.id)),
  /** Paused batches: the alert banner. */
  alerts: viewerProcedure.output(batchesOut.list).query(({ ctx }) => pausedBatches(storeOf(ctx.domain))),
  resume: operatorProcedure.input(batchIdSchema).output(batchesOut.summary).mutation(({ ctx, input }) => resumeBatch(ctx.domain, input.id, ctx.actor)),
  abort: operatorProcedure.input(batchAbortSchema).output(batchesOut.summary).mutation(({ ctx, input }) => abortBatch(ctx.domain, input.id, input.cancelRunning, ctx.actor)),
  settings: adminProcedure.output(batchesOut.settings).query(({ ctx }) => getBatchSettings(storeOf(ctx.domain))),
  saveSettings: adminProcedure.input(batchSettingsSchema).output(batchesOut.settings).mutation(({ ctx, input }) => setBatchSettings(ctx.domain, input, ctx.actor)),
});
