import { okOut, tokensOut } from "../outputs";
import { TRPCError } from "@trpc/server";
import { createToken, listTokens, revokeToken, tokenCreateSchema, tokenListSchema, tokenRevokeSchema } from "../../auth/tokens";
import { router, viewerProcedure } from "../trpc";
import { storeOf } from "../../db/store";

/** API tokens: everyone manages their own; admins list (`all`) and revoke anyone's. */
export const tokensRouter = router({
  list: viewerProcedure.input(tokenListSchema).output(tokensOut.list).query(({ ctx, input }) => {
    if (input?.all && ctx.user.role !== "admin") throw new TRPCError({ code: "FORBIDDEN", message: "Only admins list everyone's tokens" });
    return listTokens(storeOf(ctx.domain), input?.all ? {} : { userId: ctx.user.id });
  }),
  /** Needs a signed-in session: a token cannot mint further tokens (a leaked token must not outlive its revocation). */
  create: viewerProcedure.input(tokenCreateSchema).output(tokensOut.create).mutation(({ ctx, input }) => {
    if (ctx.token) throw new TRPCError({ code: "FORBIDDEN", message: "Create API tokens from a signed-in session, not with a token" });
    return createToken(storeOf(ctx.domain), ctx.user, input, ctx.actor);
  }),
  revoke: viewerProcedure.input(tokenRevokeSchema).output(okOut).mutation(async ({ ctx, input }) => {
    await revokeToken(storeOf(ctx.domain), ctx.user, input.id, ctx.actor);
    return { ok: true as const };
  }),
});
