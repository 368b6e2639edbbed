import { okOut, oobOut } from "../outputs";
import { z } from "zod";
import { bootDeviceSchema, powerActionSchema, powerSyncSettingsPatchSchema } from "../../../lib/schemas";
import { checkBmc } from "../../oob/power";
import { powerSelection, setBootDeviceByHand } from "../../operator/hand-power";
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
  bootDevice: operatorProcedure
    .input(bootDeviceSchema)
    .output(okOut)
    .mutation(async ({ ctx, input }) => {
      await setBootDeviceByHand(ctx.domain, input.id, input.device, input.persistent, ctx.actor);
      return { ok: true as const };
    }),
  checkBmc: operatorProcedure.input(id).output(oobOut.checkBmc).mutation(({ ctx, input }) => checkBmc(ctx.domain, input.id, ctx.actor)),
  syncSettings: viewerProcedure.output(oobOut.syncSettings).query(({ ctx }) => getPowerSyncSettings(ctx.domain.db)),
  updateSyncSettings: adminProcedure
    .input(powerSyncSettingsPatchSchema)
    .output(oobOut.syncSettings)
    .mutation(({ ctx, input }) => setPowerSyncSettings(ctx.domain, input, ctx.actor)),
});
