/**
 * Small helpers shared by domain and router tests: inputs that differ per machine, and one way to look at
 * the errors a procedure or domain function throws (including the shape the browser would receive).
 */
import type { LifecycleAction, MachineState } from "../../lib/lifecycle";
import type { Domain } from "../context";
import { transition } from "../machines/lifecycle";
import { TRPCError, type TRPC_ERROR_CODE_KEY } from "@trpc/server";
import { getErrorShape } from "@trpc/server/unstable-core-do-not-import";
import { expect } from "vitest";
import { AppError, type ErrorCode, type ErrorDetail } from "../../lib/errors";
import type { MachineEnrollInput } from "../../lib/schemas";
import { appRouter } from "../api/root";

const hex2 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");

/** A unicast, locally administered MAC unique per `n` (0..65535), canonical form. */
export function macFor(n: number): string {
  return `52:54:00:00:${hex2(n >> 8)}:${hex2(n)}`;
}

/** A unique IPv4 per `n` (0..65535) in 10.0.0.0/16. */
export function ipFor(n: number): string {
  return `10.0.${n >> 8}.${n & 0xff}`;
}

/** An enrollment input for machine `n`: unracked, no BMC, unique name, MAC and IP. */
export function machineInput(n: number, overrides: Partial<MachineEnrollInput> = {}): MachineEnrollInput {
  return { name: `node-${String(n).padStart(3, "0")}`, bootMac: macFor(n), ip: ipFor(n), ...overrides };
}

/** What the browser receives for a failed call: our error formatter applied to the error. */
export interface ErrorShape {
  message: string;
  code: number;
  data: { code: string; httpStatus: number; appCode: ErrorCode | null; details: ErrorDetail[] };
}

export function errorShape(error: TRPCError, path = "test"): ErrorShape {
  return getErrorShape({
    config: appRouter._def._config,
    error,
    type: "mutation",
    path,
    input: undefined,
    ctx: undefined,
  });
}

/** Await a call that must fail with a TRPCError; returns the error and its formatted shape. */
export async function trpcError(call: Promise<unknown>): Promise<{ error: TRPCError; shape: ErrorShape }> {
  let thrown: unknown;
  try {
    await call;
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error("expected the call to fail, but it succeeded");
  expect(thrown).toBeInstanceOf(TRPCError);
  const error = thrown as TRPCError;
  return { error, shape: errorShape(error) };
}

/** Await a call that must fail with tRPC `code` (and, when given, our AppError `appCode`). */
export async function expectTrpcError(
  call: Promise<unknown>,
  code: TRPC_ERROR_CODE_KEY,
  appCode?: ErrorCode,
): Promise<{ error: TRPCError; shape: ErrorShape }> {
  const r = await trpcError(call);
  expect(r.error.code, r.error.message).toBe(code);
  if (appCode) expect(r.shape.data.appCode, r.error.message).toBe(appCode);
  return r;
}

/** Run a synchronous domain call that must throw an AppError with `code`; returns the error. */
export function expectAppError(fn: () => unknown, code: ErrorCode): AppError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error(`expected AppError ${code}, but the call succeeded`);
  expect(thrown).toBeInstanceOf(AppError);
  expect((thrown as AppError).code, (thrown as AppError).message).toBe(code);
  return thrown as AppError;
}

/** Reach a procedure of a caller by its dotted path ("machines.enroll"). */
export function procedureAt(caller: unknown, path: string): (input?: unknown) => Promise<unknown> {
  const fn = path.split(".").reduce<any>((node, key) => node[key], caller);
  return fn as (input?: unknown) => Promise<unknown>;
}

/** Every procedure path of the app router with its type. (At runtime `_def.procedures` is flat, keyed by path.) */
export function procedures(): { path: string; type: "query" | "mutation" | "subscription" }[] {
  return Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: "query" | "mutation" | "subscription" } }>).map(
    ([path, p]) => ({ path, type: p._def.type }),
  );
}

/** Paths through the lifecycle table to each state (the lifecycle test covers every edge). */
const PATH: Record<MachineState, LifecycleAction[]> = {
  enrolled: [],
  manageable: ["manage"],
  inspecting: ["manage", "inspect"],
  inspect_failed: ["manage", "inspect", "fail"],
  available: ["manage", "provide"],
  deploying: ["manage", "provide", "deploy"],
  deploy_failed: ["manage", "provide", "deploy", "fail"],
  deployed: ["manage", "provide", "deploy", "succeed"],
  cleaning: ["manage", "provide", "deploy", "succeed", "release"],
  clean_failed: ["manage", "provide", "deploy", "succeed", "release", "fail"],
};

/** Drive a machine into `state` along a legal path, with plain transitions (no jobs). */
export async function driveTo(d: Domain, id: number, state: MachineState): Promise<void> {
  for (const a of PATH[state]) await transition(d, id, a, { actor: "user:test" });
}

/** Await a domain call that must reject with an AppError with `code`; returns the error. */
export async function rejectsAppError(call: Promise<unknown>, code: ErrorCode): Promise<AppError> {
  let thrown: unknown;
  try {
    await call;
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error(`expected AppError ${code}, but the call succeeded`);
  expect(thrown).toBeInstanceOf(AppError);
  expect((thrown as AppError).code, (thrown as AppError).message).toBe(code);
  return thrown as AppError;
}
