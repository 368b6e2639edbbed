import { userCreateSchema, userUpdateSchema } from "../../../lib/schemas";
import { createUser, listUsers, updateUser } from "../../auth/users";
import { adminProcedure, router } from "../trpc";

export const usersRouter = router({
  list: adminProcedure.query(({ ctx }) => listUsers(ctx.domain.db)),
  create: adminProcedure.input(userCreateSchema).mutation(({ ctx, input }) => createUser(ctx.domain, input, ctx.actor)),
  update: adminProcedure.input(userUpdateSchema).mutation(({ ctx, input }) => updateUser(ctx.domain, input, ctx.actor)),
});
