import { z } from "zod";
import { subnetCreateSchema, subnetUpdateSchema } from "../../../lib/subnets";
import { createSubnet, deleteSubnet, getSubnet, listSubnets, updateSubnet } from "../../subnets/subnets";
import { idOut, noneOut, subnetsOut } from "../outputs";
import { storeOf } from "../../db/store";
import { adminProcedure, router, viewerProcedure } from "../trpc";

const id = z.object({ id: z.number().int().positive() });

/** Subnets and their allocations (issue 14). Admins change subnets: the provisioning subnet drives dnsmasq. */
export const subnetsRouter = router({
  list: viewerProcedure.output(subnetsOut.list).query(({ ctx }) => listSubnets(storeOf(ctx.domain))),
  get: viewerProcedure
    .input(id.extend({ after: z.string().max(45).nullish(), limit: z.number().int().min(1).max(1000).optional() }))
    .output(subnetsOut.get)
    .query(({ ctx, input }) => getSubnet(storeOf(ctx.domain), input.id, input)),
  create: adminProcedure.input(subnetCreateSchema).output(idOut).mutation(({ ctx, input }) => createSubnet(ctx.domain, input, ctx.actor)),
  update: adminProcedure.input(subnetUpdateSchema).output(noneOut).mutation(({ ctx, input }) => updateSubnet(ctx.domain, input, ctx.actor)),
  delete: adminProcedure.input(id).output(noneOut).mutation(({ ctx, input }) => deleteSubnet(ctx.domain, input.id, ctx.actor)),
});
