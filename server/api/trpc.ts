import { initTRPC, TRPCError } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import { ZodError } from "zod";
import type { SessionUser } from "../../lib/dto";
import { AppError, type ErrorCode, type ErrorDetail } from "../../lib/errors";
import { formatIssues, type Role } from "../../lib/schemas";
import type { LoginThrottle } from "../auth/throttle";
import type { Config } from "../config";
import type { Domain } from "../context";
import type { NetbootStatus } from "../netboot/service";
import { fastParsing } from "./sync-parse";

export interface TrpcContext {
  domain: Domain;
  config: Config;
  user: SessionUser | null;
  /** The session cookie value of this request, if any. */
  sessionToken?: string;
  /** Set when the request was authenticated by an API token (server/auth/tokens.ts) rather than a session. */
  token?: { id: number; readOnly: boolean };
  /** The client's address, for throttling sign-in attempts. */
  clientIp: string;
  loginThrottle: LoginThrottle;
  /** The running netboot service (absent in router tests that do not start one). */
  netboot?: { status(): NetbootStatus };
  /** Adds a Set-Cookie header to the response (login/logout). */
  setCookie: (cookie: string) => void;
}

const STATUS: Record<ErrorCode, TRPC_ERROR_CODE_KEY> = {
  VALIDATION: "BAD_REQUEST",
  CSV_INVALID: "BAD_REQUEST",
  ROWS_INVALID: "BAD_REQUEST",
  U_OUT_OF_RANGE: "BAD_REQUEST",
  NOT_FOUND: "NOT_FOUND",
  MACHINE_NOT_FOUND: "NOT_FOUND",
  RACK_NOT_FOUND: "NOT_FOUND",
  USER_NOT_FOUND: "NOT_FOUND",
  CONFLICT: "CONFLICT",
  RACK_NOT_EMPTY: "CONFLICT",
  U_OVERLAP: "CONFLICT",
  INVALID_TRANSITION: "CONFLICT",
  MACHINE_IN_MAINTENANCE: "CONFLICT",
  MACHINE_BUSY: "CONFLICT",
  UNAUTHENTICATED: "UNAUTHORIZED",
  FORBIDDEN: "FORBIDDEN",
  RATE_LIMITED: "TOO_MANY_REQUESTS",
  BMC_NOT_CONFIGURED: "PRECONDITION_FAILED",
  // The BMC is a dependency: unreachable is a gateway-ish failure, not the caller's fault.
  BMC_UNREACHABLE: "BAD_GATEWAY",
  BMC_AUTH_FAILED: "PRECONDITION_FAILED",
  BMC_UNSUPPORTED: "NOT_IMPLEMENTED",
  BMC_ERROR: "BAD_GATEWAY",
  POWER_STATE_UNKNOWN: "CONFLICT",
  CONSOLE_NOT_HELD: "CONFLICT",
  PLAN_STALE: "CONFLICT",
};

/** The one place domain errors become tRPC errors. */
export function toTrpcError(err: unknown): unknown {
  if (err instanceof AppError) return new TRPCError({ code: STATUS[err.code], message: err.message, cause: err });
  return err;
}

const t = initTRPC.context<TrpcContext>().create({
  errorFormatter({ shape, error }) {
    const cause = error.cause;
    let appCode: ErrorCode | null = null;
    let details: ErrorDetail[] = [];
    let message = shape.message;
    if (cause instanceof AppError) {
      appCode = cause.code;
      details = cause.details;
    } else if (cause instanceof ZodError) {
      appCode = "VALIDATION";
      details = formatIssues(cause);
      message = details.map((d) => `${d.field}: ${d.message}`).join("; ");
    } else if (error.code === "INTERNAL_SERVER_ERROR") {
      // Never leak internals (SQL, paths) to the browser.
      message = "Internal error; see the server log";
    }
    const { stack: _stack, ...data } = shape.data;
    return { ...shape, message, data: { ...data, appCode, details } };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

const mapErrors = t.middleware(async ({ next }) => {
  const res = await next();
  if (!res.ok) throw toTrpcError(res.error.cause instanceof AppError ? res.error.cause : res.error);
  return res;
});

// Domain functions throw AppError; tRPC wraps thrown errors, so unwrap and map in one middleware.
// fastParsing: zod's compiled (synchronous) checks for every .input()/.output() (server/api/sync-parse.ts).
export const publicProcedure = fastParsing(t.procedure.use(mapErrors));

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/**
 * A procedure that needs a signed-in user with at least `role`. Viewers read; operators act; admins manage users.
 * `writesNothing`: a mutation only because its input does not fit a GET URL (machines.plan); read-only API tokens
 * may call it (server/api/access.ts READ_ONLY_MUTATIONS lists them).
 */
export function procedureFor(role: Role, opts: { writesNothing?: boolean } = {}) {
  return publicProcedure.use(({ ctx, next, type }) => {
    if (!ctx.user) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in first" });
    if (ctx.token?.readOnly && type !== "query" && !opts.writesNothing) {
      throw new TRPCError({ code: "FORBIDDEN", message: "This API token is read-only" });
    }
    if (RANK[ctx.user.role] < RANK[role]) {
      throw new TRPCError({ code: "FORBIDDEN", message: `This needs the ${role} role; you are ${ctx.user.role}` });
    }
    return next({ ctx: { ...ctx, user: ctx.user, actor: `user:${ctx.user.name}` } });
  });
}

export const viewerProcedure = procedureFor("viewer");
export const operatorProcedure = procedureFor("operator");
/** An operator's mutation that writes nothing (a plan preview): open to read-only tokens of operators and admins. */
export const operatorReadProcedure = procedureFor("operator", { writesNothing: true });
export const adminProcedure = procedureFor("admin");
