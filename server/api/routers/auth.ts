import { okOut, sessionUserOut } from "../outputs";
import { loginSchema } from "../../../lib/schemas";
import { clearedSessionCookie, login, logout, sessionCookie } from "../../auth/sessions";
import { publicProcedure, router } from "../trpc";

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
  logout: publicProcedure.output(okOut).mutation(({ ctx }) => {
    logout(ctx.domain.db, ctx.sessionToken);
    // Sockets opened with this session are closed by the gateway.
    if (ctx.user) ctx.domain.bus.publish({ type: "user.access.changed", userId: ctx.user.id });
    ctx.setCookie(clearedSessionCookie(ctx.config.secureCookies));
    return { ok: true as const };
  }),
});
