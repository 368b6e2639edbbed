import { idOut, noneOut, racksOut } from "../outputs";
import { z } from "zod";
import { rackCreateSchema, rackUpdateSchema } from "../../../lib/schemas";
import { storeOf } from "../../db/store";
import { createRack, deleteRack, listRacks, rackElevations, updateRack } from "../../racks/racks";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const id = z.object({ id: z.number().int().positive() });

export const racksRouter = router({
  list: viewerProcedure.output(racksOut.list).query(({ ctx }) => listRacks(storeOf(ctx.domain))),
  elevations: viewerProcedure
    .input(z.object({ rackIds: z.array(z.number().int().positive()).max(500).optional() }).optional())
    .output(racksOut.elevations)
    .query(({ ctx, input }) => rackElevations(storeOf(ctx.domain), input?.rackIds)),
  create: operatorProcedure.input(rackCreateSchema).output(idOut).mutation(({ ctx, input }) => createRack(ctx.domain, input, ctx.actor)),
  update: operatorProcedure.input(rackUpdateSchema).output(noneOut).mutation(({ ctx, input }) => updateRack(ctx.domain, input, ctx.actor)),
  delete: operatorProcedure.input(id).output(noneOut).mutation(({ ctx, input }) => deleteRack(ctx.domain, input.id, ctx.actor)),
});
