/**
 * Keeps a job's log view complete next to the live stream (isomorphic; the log pane drives it, DESIGN §9).
 *
 * A catch-up reads pages of lines after a seq until a short page. A failed read is retried with backoff until it
 * succeeds or the catch-up is stopped, and the error is shown meanwhile (one that cannot mend is shown, not retried). A request made while a catch-up runs is
 * served right after it, from the lowest seq asked for. Live lines that skip seqs (a gap: the agent numbers a
 * job's lines without holes) ask for a catch-up from the last seq held, so the view repairs itself whatever lost
 * the lines in between — a failed backfill, a join acknowledgement lost with a dropped connection.
 */
import type { LogLineDto } from "./jobs";
import { backoffDelay, sleep as wait } from "./retry";

export interface LogCatchUpOptions {
  /** Lines with seq > afterSeq in seq order, at most `pageSize`. */
  fetchPage: (afterSeq: number) => Promise<LogLineDto[]>;
  pageSize: number;
  onLines: (lines: LogLineDto[]) => void;
  /** A message while reads fail, null once a catch-up completed. */
  onError: (message: string | null) => void;
  /** Errors that another try will not mend (the job is gone, the session ended): said once, not retried. */
  permanent?: (err: unknown) => boolean;
  firstRetryMs?: number;
  maxRetryMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export class LogCatchUp {
  private pending: number | null = null;
  private running = false;
  private stopped = false;
  /** Set once a catch-up completed: before that, the first one is still on its way and covers any gap. */
  private synced = false;

  constructor(private readonly o: LogCatchUpOptions) {}

  /** Read every line after `afterSeq`: now, or as soon as the catch-up in progress ends. */
  request(afterSeq: number): void {
    if (this.stopped) return;
    this.pending = this.pending === null ? afterSeq : Math.min(this.pending, afterSeq);
    if (!this.running) void this.run();
  }

  /** Live lines arrived; `heldSeq` is the highest seq the view held (or had queued) before them. */
  live(lines: readonly LogLineDto[], heldSeq: number): void {
    if (!this.synced || lines.length === 0) return;
    if (lines[0]!.seq > heldSeq + 1) this.request(heldSeq);
  }

  /** No more reads or callbacks (the view moved to another job or closed). */
  stop(): void {
    this.stopped = true;
    this.pending = null;
  }

  private async run(): Promise<void> {
    this.running = true;
    const sleep = this.o.sleep ?? wait;
    const backoff = { baseMs: this.o.firstRetryMs ?? 1000, maxMs: this.o.maxRetryMs ?? 15_000 };
    let failures = 0;
    try {
      while (this.pending !== null && !this.stopped) {
        let after = this.pending;
        this.pending = null;
        try {
          for (;;) {
            const page = await this.o.fetchPage(after);
            if (this.stopped) return;
            this.o.onLines(page);
            if (page.length < this.o.pageSize) break;
            after = page[page.length - 1]!.seq;
          }
          this.synced = true;
          failures = 0;
          if (this.pending === null) this.o.onError(null);
        } catch (err) {
          if (this.stopped) return;
          const reason = err instanceof Error ? err.message : String(err);
          if (this.o.permanent?.(err)) {
            this.pending = null;
            this.o.onError(`Could not load the log: ${reason}`);
            return;
          }
          this.pending = this.pending === null ? after : Math.min(this.pending, after);
          const delay = backoffDelay(failures++, backoff);
          this.o.onError(`Could not load the log: ${reason} — retrying in ${Math.round(delay / 1000)} s`);
          await sleep(delay);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
