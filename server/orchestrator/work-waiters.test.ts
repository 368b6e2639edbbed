import { describe, expect, it } from "vitest";
import { WorkWaiters } from "./work-waiters";

const settled = async (p: Promise<void>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe("WorkWaiters", () => {
  it("a wake between the mark and the wait ends the wait at once (no lost wake-up)", async () => {
    const w = new WorkWaiters();
    const mark = w.mark(7);
    w.wake(7); // the advance committed while the long-poll was still reading
    expect(await settled(w.wait(7, 60_000, mark), 50)).toBe(true);
  });

  it("without a wake since the mark, waits for the next wake or the timeout", async () => {
    const w = new WorkWaiters();
    w.wake(7);
    const mark = w.mark(7);
    const waiting = w.wait(7, 60_000, mark);
    expect(await settled(waiting, 50)).toBe(false);
    w.wake(8); // another job's wake-up is not this one's
    expect(await settled(waiting, 50)).toBe(false);
    w.wake(7);
    expect(await settled(waiting, 50)).toBe(true);
    expect(await settled(w.wait(9, 30, w.mark(9)), 200)).toBe(true); // the timeout
  });

  it("forgetting marks beyond 10,000 jobs errs towards waking", async () => {
    const w = new WorkWaiters();
    w.wake(1);
    const mark = w.mark(1);
    for (let j = 2; j <= 10_001; j++) w.wake(j);
    expect(await settled(w.wait(1, 60_000, mark), 50)).toBe(true);
  });
});
