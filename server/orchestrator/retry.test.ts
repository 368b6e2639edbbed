import { describe, expect, it } from "vitest";
import { backoffMs, decide } from "./retry";

describe("retry policy", () => {
  it("doubles from base up to max, with jitter between half and all of it", () => {
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffMs(3, 1000, 60_000, () => 1)).toBe(4000);
    expect(backoffMs(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffMs(20, 1000, 60_000, () => 0)).toBe(30_000);
  });

  const step = { attempt: 1, maxAttempts: 3, backoffBaseMs: 1000, backoffMaxMs: 10_000 };
  it("retries a transient failure while attempts remain, then fails", () => {
    expect(decide({ ok: false, transient: true, message: "x" }, step, 100, () => 1)).toEqual({ state: "pending", nextAttemptAt: 1100 });
    expect(decide({ ok: false, transient: true, message: "boom" }, { ...step, attempt: 3 }, 0)).toEqual({
      state: "failed",
      error: "boom (after 3 attempts)",
    });
  });
  it("never retries a permanent failure", () => {
    expect(decide({ ok: false, transient: false, message: "bad image" }, step, 0)).toEqual({ state: "failed", error: "bad image" });
    expect(decide({ ok: true }, step, 0)).toEqual({ state: "succeeded" });
  });
});
