import { authOut, okOut, sessionUserOut } from "../outputs";
import { changePasswordSchema, loginSchema } from "../../../lib/schemas";
import { TRPCError } from "@trpc/server";
import { changeOwnPassword } from "../../auth/users";
import { clearedSessionCookie, login, logout, sessionCookie } from "../../auth/sessions";
import { publicProcedure, router, viewerProcedure } from "../trpc";

export const authRouter = router({
  me: publicProcedure.output(sessionUserOut.nullable()).query(({ ctx }) => ctx.user),
  login: publicProcedure.input(loginSchema).output(sessionUserOut).mutation(async ({ ctx, input }) => {
    // Counted before the password check, so a burst of concurrent attempts cannot all get past the limit.
    ctx.loginThrottle.begin(ctx.clientIp, input.name);
    const s = await login(ctx.domain.db, input.name, input.password, ctx.config.sessionTtlMs);
    ctx.loginThrottle.succeeded(ctx.clientIp, input.name);
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
      ctx.loginThrottle.begin(ctx.clientIp, ctx.user.name);
      const r = await changeOwnPassword(ctx.domain, ctx.user.id, input, ctx.sessionToken, ctx.actor);
      ctx.loginThrottle.succeeded(ctx.clientIp, ctx.user.name);
      return r;
    }),
  logout: publicProcedure.output(okOut).mutation(({ ctx }) => {
    logout(ctx.domain.db, ctx.sessionToken);
    // Sockets opened with this session are closed by the gateway.
    if (ctx.user) ctx.domain.bus.publish({ type: "user.access.changed", userId: ctx.user.id });
    ctx.setCookie(clearedSessionCookie(ctx.config.secureCookies));
    return { ok: true as const };
  }),
});
