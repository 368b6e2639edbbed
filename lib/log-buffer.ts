/** The browser's in-memory view of a job's log: lines in seq order, deduplicated, capped (isomorphic). */
import type { LogLineDto } from "./jobs";

export interface LogBuffer {
  /** In seq order, each seq once. */
  lines: LogLineDto[];
  /** Older lines removed to stay under the cap (they remain in the database and in the download). */
  dropped: number;
  /** The highest seq held, -1 when empty: where a backfill after a reconnect resumes. */
  lastSeq: number;
}

export const EMPTY_LOG: LogBuffer = { lines: [], dropped: 0, lastSeq: -1 };

/**
 * Merge lines from a backfill page or a live event. Live lines and backfill pages may overlap or arrive out of
 * order (subscribe first, then backfill), so the merge dedupes by seq. Keeps at most `cap` lines, dropping the
 * oldest; once lines were dropped, a line older than the oldest kept one is ignored rather than re-added.
 */
export function mergeLines(buf: LogBuffer, incoming: readonly LogLineDto[], cap: number): LogBuffer {
  if (incoming.length === 0) return buf;
  const floor = buf.dropped > 0 && buf.lines.length ? buf.lines[0]!.seq : -1;
  let lines: LogLineDto[];
  let inOrder = true;
  let prev = buf.lastSeq;
  for (const l of incoming) {
    if (l.seq <= prev) {
      inOrder = false;
      break;
    }
    prev = l.seq;
  }
  if (inOrder) {
    lines = buf.lines.concat(incoming);
  } else {
    const bySeq = new Map<number, LogLineDto>();
    for (const l of buf.lines) bySeq.set(l.seq, l);
    for (const l of incoming) if (l.seq > floor && !bySeq.has(l.seq)) bySeq.set(l.seq, l);
    if (bySeq.size === buf.lines.length) return buf;
    lines = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }
  let dropped = buf.dropped;
  if (lines.length > cap) {
    dropped += lines.length - cap;
    lines = lines.slice(lines.length - cap);
  }
  return { lines, dropped, lastSeq: lines.length ? lines[lines.length - 1]!.seq : buf.lastSeq };
}

/** One line of a downloaded .log file: ISO time, stream, text. */
export function formatLogLine(l: LogLineDto): string {
  return `${new Date(l.ts).toISOString()} [${l.stream}] ${l.text}`;
}
