import { describe, expect, it } from "vitest";
import { AppError } from "./errors";
import { backoffDelay, sleep } from "./retry";
import { classifyFailure, StepFailure, TRANSIENT_CODES } from "./step-failure";

describe("backoffDelay", () => {
  it("doubles from base to the ceiling; without jitter exactly", () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { baseMs: 25, maxMs: 1000 }))).toEqual([25, 50, 100, 200, 400, 800, 1000]);
    expect(backoffDelay(1000, { baseMs: 500, maxMs: Infinity })).toBe(500 * 2 ** 30);
    expect(backoffDelay(-1, { baseMs: 500, maxMs: 1000 })).toBe(500);
  });
  it("with jitter: between half and all of the delay", () => {
    expect(backoffDelay(2, { baseMs: 200, maxMs: 10_000, jitter: true }, () => 0)).toBe(400);
    expect(backoffDelay(2, { baseMs: 200, maxMs: 10_000, jitter: true }, () => 1)).toBe(800);
    expect(backoffDelay(40, { baseMs: 200, maxMs: 10_000, jitter: true }, () => 1)).toBe(10_000);
  });
  it("sleep ends early when aborted", async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const p = sleep(60_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - t0).toBeLessThan(30_000);
  });
});

describe("one step-failure type and one transient list", () => {
  it("a StepFailure says itself; codes from the list are transient; BMC_ERROR and unknown errors are not", () => {
    expect(classifyFailure(new StepFailure("x", true))).toEqual({ transient: true, message: "x" });
    expect(classifyFailure(new AppError("BMC_UNREACHABLE", "no answer")).transient).toBe(true);
    expect(classifyFailure(new AppError("BMC_ERROR", "odd output")).transient).toBe(false);
    expect(classifyFailure(Object.assign(new Error("reset"), { code: "ECONNRESET" })).transient).toBe(true);
    expect(classifyFailure(new Error("bug")).transient).toBe(false);
    expect(classifyFailure("text")).toEqual({ transient: false, message: "text" });
    expect(TRANSIENT_CODES.has("BMC_ERROR")).toBe(false);
  });
});
