import { describe, expect, it } from "vitest";
import type { LogLineDto } from "./jobs";
import { EMPTY_LOG, formatLogLine, mergeLines } from "./log-buffer";

const line = (seq: number, text = `l${seq}`): LogLineDto => ({ seq, ts: 1_700_000_000_000 + seq, stream: "stdout", text, stepId: 1 });
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => line(a + i));
const seqs = (b: { lines: LogLineDto[] }) => b.lines.map((l) => l.seq);

describe("mergeLines", () => {
  it("appends lines in order and tracks the last seq", () => {
    const b = mergeLines(mergeLines(EMPTY_LOG, range(0, 2), 100), range(3, 4), 100);
    expect(seqs(b)).toEqual([0, 1, 2, 3, 4]);
    expect(b.lastSeq).toBe(4);
  });

  it("dedupes a backfill that overlaps live lines received first (subscribe, then backfill)", () => {
    const live = mergeLines(EMPTY_LOG, range(5, 7), 100);
    const b = mergeLines(live, range(0, 6), 100);
    expect(seqs(b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(b.lastSeq).toBe(7);
    // A page that adds nothing returns the same buffer (no re-render).
    expect(mergeLines(b, range(2, 4), 100)).toBe(b);
  });

  it("drops the oldest lines past the cap, counts them, and does not re-add them", () => {
    const b = mergeLines(EMPTY_LOG, range(0, 9), 4);
    expect(seqs(b)).toEqual([6, 7, 8, 9]);
    expect(b.dropped).toBe(6);
    const again = mergeLines(b, range(0, 10), 4);
    expect(seqs(again)).toEqual([7, 8, 9, 10]);
    expect(again.dropped).toBe(7);
  });

  it("formats a download line with time and stream", () => {
    expect(formatLogLine({ ...line(1, "hello"), stream: "stderr" })).toBe("2023-11-14T22:13:20.001Z [stderr] hello");
  });
});
