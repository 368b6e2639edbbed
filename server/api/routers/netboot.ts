import { idOut, netbootOut, noneOut } from "../outputs";
import { z } from "zod";
import { netbootSettingsSchema, osProfileCreateSchema, osProfileUpdateSchema } from "../../../lib/netboot";
import { createProfile, deleteProfile, listProfiles, updateProfile } from "../../netboot/profiles";
import { loadNetbootSettings, storeNetbootSettings } from "../../netboot/settings";
import { storeOf } from "../../db/store";
import { adminProcedure, operatorProcedure, router, viewerProcedure } from "../trpc";

const id = z.object({ id: z.number().int().positive() });

export const osProfilesRouter = router({
  list: viewerProcedure.output(netbootOut.profiles).query(({ ctx }) => listProfiles(ctx.domain)),
  create: operatorProcedure.input(osProfileCreateSchema).output(idOut).mutation(({ ctx, input }) => createProfile(ctx.domain, input, ctx.actor)),
  update: operatorProcedure.input(osProfileUpdateSchema).output(noneOut).mutation(({ ctx, input: { id: profileId, ...rest } }) => updateProfile(ctx.domain, profileId, rest, ctx.actor)),
  delete: operatorProcedure.input(id).output(noneOut).mutation(({ ctx, input }) => deleteProfile(ctx.domain, input.id, ctx.actor)),
});

export const netbootRouter = router({
  settings: adminProcedure.output(netbootOut.settings).query(({ ctx }) => loadNetbootSettings(storeOf(ctx.domain))),
  saveSettings: adminProcedure.input(netbootSettingsSchema).output(netbootOut.settings).mutation(({ ctx, input }) => storeNetbootSettings(ctx.domain, input, ctx.actor)),
  status: viewerProcedure.output(netbootOut.status).query(({ ctx }) => ctx.netboot?.status() ?? null),
});
