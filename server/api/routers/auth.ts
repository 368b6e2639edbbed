import { okOut, sessionUserOut } from "../outputs";
import { loginSchema } from "../../../lib/schemas";
import { clearedSessionCookie, login, logout, sessionCookie } from "../../auth/sessions";
import { publicProcedure, router } from "../trpc";

export const authRouter = router({
  me: publicProcedure.output(sessionUserOut.nullable()).query(({ ctx }) => ctx.user),
  login: publicProcedure.input(loginSchema).output(sessionUserOut).mutation(async ({ ctx, input }) => {
    ctx.loginThrottle.check(ctx.clientIp, input.name);
    let s;
    try {
      s = await login(ctx.domain.db, input.name, input.password, ctx.config.sessionTtlMs);
    } catch (err) {
      ctx.loginThrottle.failed(ctx.clientIp, input.name);
      throw err;
    }
    ctx.loginThrottle.succeeded(ctx.clientIp, input.name);
    ctx.setCookie(sessionCookie(s.token, s.expiresAt, ctx.config.secureCookies));
    return s.user;
  }),
  logout: publicProcedure.output(okOut).mutation(({ ctx }) => {
    logout(ctx.domain.db, ctx.sessionToken);
    ctx.setCookie(clearedSessionCookie(ctx.config.secureCookies));
    return { ok: true as const };
  }),
});
