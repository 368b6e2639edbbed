import { okOut, oobOut } from "../outputs";
import { z } from "zod";
import { bootDeviceSchema, powerActionSchema, powerSyncSettingsPatchSchema } from "../../../lib/schemas";
import { checkBmc } from "../../oob/power";
import { powerSelection, setBootDeviceByHand, startPowerSelection, waitPowerOperation } from "../../operator/hand-power";
import { sweepPower } from "../../oob/power-sync";
import { storeOf } from "../../db/store";
import { getPowerSyncSettings, setPowerSyncSettings } from "../../oob/settings";
import { adminProcedure, operatorProcedure, router, viewerProcedure } from "../trpc";

const id = z.object({ id: z.number().int().positive() });

/** Out-of-band control: power, boot device, BMC checks, power sync settings. */
export const oobRouter = router({
  /** Per-machine results; one machine's failure never fails the others. */
  power: operatorProcedure
    .input(powerActionSchema)
    .output(oobOut.power)
    .mutation(({ ctx, input }) => powerSelection(ctx.domain, input.selection, input.action, ctx.actor, input.planId)),
  /**
   * The same action, answered at once: each machine is checked and marked "powering on/off…" now; the BMC command
   * and its confirmation run in the background. Wait on the returned operation with oob.powerWait.
   */
  powerStart: operatorProcedure
    .input(powerActionSchema)
    .output(oobOut.powerStart)
    .mutation(({ ctx, input }) => startPowerSelection(ctx.domain, input.selection, input.action, ctx.actor, input.planId)),
  /** Wait up to `timeoutMs` for a powerStart operation; `done: false` when it is still running. */
  powerWait: operatorProcedure
    .input(z.object({ operationId: z.string().uuid(), timeoutMs: z.number().int().min(0).max(60_000).default(20_000) }))
    .output(oobOut.powerWait)
    .mutation(({ ctx, input }) => waitPowerOperation(ctx.domain, input.operationId, input.timeoutMs)),
  bootDevice: operatorProcedure
    .input(bootDeviceSchema)
    .output(okOut)
    .mutation(async ({ ctx, input }) => {
      await setBootDeviceByHand(ctx.domain, input.id, input.device, input.persistent, ctx.actor);
      return { ok: true as const };
    }),
  checkBmc: operatorProcedure.input(id).output(oobOut.checkBmc).mutation(({ ctx, input }) => checkBmc(ctx.domain, input.id, ctx.actor)),
  syncSettings: viewerProcedure.output(oobOut.syncSettings).query(({ ctx }) => getPowerSyncSettings(storeOf(ctx.domain))),
  /** Run a power-sync sweep now (joins a sweep that is already running) and return its figures. */
  syncNow: operatorProcedure.output(oobOut.sweep).mutation(({ ctx }) => {
    const sync = ctx.domain.oob.sync;
    // Asked by an operator: every BMC, also on PostgreSQL where the periodic sweeps lease BMCs per interval (a plain
    // sweep right after one of another process's would find every BMC leased and read none).
    return sync.now ? sync.now() : sweepPower(ctx.domain, { all: true });
  }),
  /** The last sweep of this process and how status reads reached the BMCs (native probe, fallbacks). */
  syncStatus: viewerProcedure.output(oobOut.syncStatus).query(({ ctx }) => {
    const { sync, probeStats, config } = ctx.domain.oob;
    return { loop: sync.now !== undefined, last: sync.last ?? null, probe: { ...probeStats }, statusProbe: config.statusProbe };
  }),
  updateSyncSettings: adminProcedure
    .input(powerSyncSettingsPatchSchema)
    .output(oobOut.syncSettings)
    .mutation(({ ctx, input }) => setPowerSyncSettings(ctx.domain, input, ctx.actor)),
});
