import { authOut, okOut, sessionUserOut } from "../outputs";
import { changePasswordSchema, loginSchema } from "../../../lib/schemas";
import { TRPCError } from "@trpc/server";
import { changeOwnPassword } from "../../auth/users";
import { clearedSessionCookie, login, logout, sessionCookie } from "../../auth/sessions";
import { publicProcedure, router, viewerProcedure } from "../trpc";
import { storeOf } from "../../db/store";

export const authRouter = router({
  me: publicProcedure.output(sessionUserOut.nullable()).query(({ ctx }) => ctx.user),
  login: publicProcedure.input(loginSchema).output(sessionUserOut).mutation(async ({ ctx, input }) => {
    // Counted before the password check, so a burst of concurrent attempts cannot all get past the limit.
    const store = storeOf(ctx.domain);
    await ctx.loginThrottle.begin(store, ctx.clientIp, input.name);
    const s = await login(store, input.name, input.password, ctx.config.sessionTtlMs);
    await ctx.loginThrottle.succeeded(store, ctx.clientIp, input.name);
    ctx.setCookie(sessionCookie(s.token, s.expiresAt, ctx.config.secureCookies));
    return s.user;
  }),
  /** Change your own password (the current one is required); your other sessions end, this one stays. */
  changePassword: viewerProcedure
    .input(changePasswordSchema)
    .output(authOut.changePassword)
    .mutation(async ({ ctx, input }) => {
      if (ctx.token) throw new TRPCError({ code: "FORBIDDEN", message: "Change your password in a signed-in browser session, not with an API token" });
      // Guessing the current password through a session left open is throttled like logins.
      const store = storeOf(ctx.domain);
      await ctx.loginThrottle.begin(store, ctx.clientIp, ctx.user.name);
      const r = await changeOwnPassword(ctx.domain, ctx.user.id, input, ctx.sessionToken, ctx.actor);
      await ctx.loginThrottle.succeeded(store, ctx.clientIp, ctx.user.name);
      return r;
    }),
  logout: publicProcedure.output(okOut).mutation(async ({ ctx }) => {
    await logout(storeOf(ctx.domain), ctx.sessionToken);
    // Sockets opened with this session are closed by the gateway.
    if (ctx.user) ctx.domain.bus.publish({ type: "user.access.changed", userId: ctx.user.id });
    ctx.setCookie(clearedSessionCookie(ctx.config.secureCookies));
    return { ok: true as const };
  }),
});
