import { describe, expect, it } from "vitest";
import type { LogLineDto } from "./jobs";
import { LogCatchUp } from "./log-catchup";

const line = (seq: number): LogLineDto => ({ seq, ts: 1_700_000_000_000 + seq, stream: "stdout", text: `l${seq}`, stepId: 1 });

/** A job log on a "server" of `total` lines, read in pages, with scripted failures and a record of every read. */
function harness(total: number, pageSize = 3, failures: string[] = []) {
  const stored = Array.from({ length: total }, (_, i) => line(i));
  const reads: number[] = [];
  const got: number[] = [];
  const errors: (string | null)[] = [];
  const sleeps: number[] = [];
  const c = new LogCatchUp({
    fetchPage: async (afterSeq) => {
      reads.push(afterSeq);
      await Promise.resolve();
      const f = failures.shift();
      if (f) throw new Error(f);
      return stored.filter((l) => l.seq > afterSeq).slice(0, pageSize);
    },
    pageSize,
    onLines: (ls) => got.push(...ls.map((l) => l.seq)),
    onError: (m) => errors.push(m),
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  const settle = async () => {
    for (let i = 0; i < 50; i++) await Promise.resolve();
  };
  return { c, stored, reads, got, errors, sleeps, settle };
}

describe("LogCatchUp", () => {
  it("reads pages after the seq until a short page", async () => {
    const h = harness(7);
    h.c.request(1);
    await h.settle();
    expect(h.reads).toEqual([1, 4]);
    expect(h.got).toEqual([2, 3, 4, 5, 6]);
    expect(h.errors).toEqual([null]);
  });

  it("retries a failed read with growing delays, says so, and clears the message once it succeeds", async () => {
    const h = harness(4, 10, ["Failed to fetch", "Failed to fetch", "Failed to fetch"]);
    h.c.request(-1);
    await h.settle();
    expect(h.reads).toEqual([-1, -1, -1, -1]);
    expect(h.sleeps).toEqual([1000, 2000, 4000]);
    expect(h.errors).toEqual([
      "Could not load the log: Failed to fetch — retrying in 1 s",
      "Could not load the log: Failed to fetch — retrying in 2 s",
      "Could not load the log: Failed to fetch — retrying in 4 s",
      null,
    ]);
    expect(h.got).toEqual([0, 1, 2, 3]);
  });

  it("resumes a failed multi-page read from the page that failed, not from the start", async () => {
    const h = harness(8, 3, ["", "boom"]);
    h.c.request(-1);
    await h.settle();
    expect(h.reads).toEqual([-1, 2, 2, 5]);
    expect(h.got).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("repairs a gap in the live stream once synced: lines missed between two live events are read", async () => {
    const h = harness(10, 100);
    h.c.request(-1);
    await h.settle();
    h.got.length = 0;
    h.reads.length = 0;
    // Held up to 5; live lines 6..7 follow on: nothing to do.
    h.c.live([line(6), line(7)], 5);
    await h.settle();
    expect(h.reads).toEqual([]);
    // Held up to 7; live line 10 skips 8 and 9.
    h.c.live([line(10)], 7);
    await h.settle();
    expect(h.reads).toEqual([7]);
    expect(h.got).toEqual([8, 9]);
  });

  it("repairs a gap seen while a catch-up runs, right after it", async () => {
    const h = harness(10, 100);
    h.c.request(-1);
    await h.settle();
    h.reads.length = 0;
    h.c.request(8); // running now
    h.c.live([line(9)], 6);
    await h.settle();
    expect(h.reads).toEqual([8, 6]);
  });

  it("does not treat live lines before the first catch-up as a gap (that catch-up covers them)", async () => {
    const h = harness(10, 100);
    h.c.live([line(9)], -1);
    await h.settle();
    expect(h.reads).toEqual([]);
  });

  it("serves a request made during a read right after it, from the lowest seq asked for", async () => {
    const h = harness(10, 100);
    h.c.request(4);
    h.c.request(6);
    h.c.request(2);
    await h.settle();
    expect(h.reads).toEqual([4, 2]);
  });

  it("says an error another try will not mend once, without retrying", async () => {
    const h = harness(4, 10, ["NOT_FOUND"]);
    const c = new LogCatchUp({
      fetchPage: async () => Promise.reject(Object.assign(new Error("Job 9 does not exist"), { status: 404 })),
      pageSize: 10,
      onLines: () => undefined,
      onError: (m) => h.errors.push(m),
      permanent: (err) => (err as { status?: number }).status === 404,
      sleep: async (ms) => void h.sleeps.push(ms),
    });
    c.request(-1);
    await h.settle();
    expect(h.errors).toEqual(["Could not load the log: Job 9 does not exist"]);
    expect(h.sleeps).toEqual([]);
  });

  it("stops reading and calling back once stopped", async () => {
    const h = harness(10, 100, ["down"]);
    h.c.request(-1);
    h.c.stop();
    await h.settle();
    expect(h.reads).toEqual([-1]);
    expect(h.got).toEqual([]);
    expect(h.errors).toEqual([]);
    h.c.request(0);
    await h.settle();
    expect(h.reads).toEqual([-1]);
  });
});
