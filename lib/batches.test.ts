import { describe, expect, it } from "vitest";
import { batchCreateSchema, passesThreshold } from "./batches";

describe("the failure threshold rule", () => {
  it("waits for the minimum sample (3, or the whole batch when smaller), then compares strictly", () => {
    expect(passesThreshold(2, 2, 100, 20)).toBe(false); // 2 of 2 failed, but fewer than 3 finished
    expect(passesThreshold(1, 3, 100, 20)).toBe(true); // 33% > 20%
    expect(passesThreshold(1, 5, 100, 20)).toBe(false); // exactly 20% does not pass it
    expect(passesThreshold(2, 2, 2, 20)).toBe(true); // a batch of two: the whole batch is the sample
    expect(passesThreshold(0, 50, 100, 0)).toBe(false);
    expect(passesThreshold(1, 1, 100, 0)).toBe(true); // 0% = the first failure pauses
    expect(passesThreshold(10, 10, 10, 100)).toBe(false); // 100% never pauses
  });

  it("bounds concurrency and threshold", () => {
    const sel = { selection: { ids: [1] }, kind: "inspect" as const };
    expect(batchCreateSchema.safeParse({ ...sel, concurrency: 0 }).success).toBe(false);
    expect(batchCreateSchema.safeParse({ ...sel, concurrency: 501 }).success).toBe(false);
    expect(batchCreateSchema.safeParse({ ...sel, failureThresholdPct: 101 }).success).toBe(false);
    expect(batchCreateSchema.parse(sel)).toMatchObject({ concurrency: 10, failureThresholdPct: 20 });
  });
});
