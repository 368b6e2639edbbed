import { idOut, noneOut, usersOut } from "../outputs";
import { userCreateSchema, userUpdateSchema } from "../../../lib/schemas";
import { createUser, listUsers, updateUser } from "../../auth/users";
import { adminProcedure, router } from "../trpc";
import { storeOf } from "../../db/store";

export const usersRouter = router({
  list: adminProcedure.output(usersOut.list).query(({ ctx }) => listUsers(storeOf(ctx.domain))),
  create: adminProcedure.input(userCreateSchema).output(idOut).mutation(({ ctx, input }) => createUser(ctx.domain, input, ctx.actor)),
  update: adminProcedure.input(userUpdateSchema).output(noneOut).mutation(({ ctx, input }) => updateUser(ctx.domain, input, ctx.actor)),
});
