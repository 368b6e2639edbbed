import { z } from "zod";
import { ApiError, type ApiClient } from "./client";

type Stream = "stdout" | "stderr" | "agent" | "phase";
interface Pending {
  stepId: number;
  seq: number;
  ts: number;
  stream: Stream;
  text: string;
}

export interface ShipperOptions {
  /** Lines per POST (the server takes up to 2000). */
  maxBatch?: number;
  /** Ship at least this often while lines wait (ms). */
  intervalMs?: number;
  /** Lines kept while the server is unreachable; beyond it new lines are counted, not kept. */
  maxBuffered?: number;
  /** The server refused the token: re-look up; resolves false when the job is over (nothing more can be sent). */
  onUnauthorized: () => Promise<boolean>;
  /** Local diagnostics (the agent's stderr). */
  note: (text: string) => void;
}

const accepted = z.object({ accepted: z.number().int() });
// The server refuses longer lines; keep the head of the line and say it was cut.
const MAX_TEXT = 8000;

/**
 * Ships a job's log lines to the server. Every line gets the next job-wide sequence number when it is taken;
 * lines wait in memory and are sent in batches (every `intervalMs` or `maxBatch` lines), and a batch that fails
 * is sent again until the server takes it. The server ignores seqs it already has, so resending is safe and
 * nothing is lost while the server restarts.
 */
export class LogShipper {
  private seq: number;
  private readonly queue: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private dropped = 0;
  private readonly maxBatch: number;
  private readonly intervalMs: number;
  private readonly maxBuffered: number;

  constructor(
    private readonly client: ApiClient,
    nextSeq: number,
    private readonly opts: ShipperOptions,
  ) {
    this.seq = nextSeq;
    this.maxBatch = opts.maxBatch ?? 500;
    this.intervalMs = opts.intervalMs ?? 200;
    this.maxBuffered = opts.maxBuffered ?? 200_000;
  }

  /** The server's view after a re-lookup: never go back below a seq it already stored. */
  resumeFrom(nextSeq: number): void {
    this.seq = Math.max(this.seq, nextSeq);
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Take text (one or more lines) for a step. */
  write(stepId: number, text: string, stream: Stream = "agent"): void {
    if (this.closed) return;
    for (const raw of text.replace(/\r?\n$/, "").split(/\r?\n/)) {
      if (this.queue.length >= this.maxBuffered) {
        this.dropped++;
        continue;
      }
      if (this.dropped) {
        this.push(stepId, `[agent] ${this.dropped} log lines dropped: the server was unreachable and the buffer full`, "agent");
        this.dropped = 0;
      }
      this.push(stepId, raw.length > MAX_TEXT ? `${raw.slice(0, MAX_TEXT)} [cut]` : raw, stream);
    }
    if (this.queue.length >= this.maxBatch) this.kick();
    else if (!this.timer) this.timer = setTimeout(() => this.kick(), this.intervalMs);
  }

  private push(stepId: number, text: string, stream: Stream): void {
    this.queue.push({ stepId, seq: this.seq++, ts: Date.now(), stream, text });
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.running) this.running = this.drain().finally(() => (this.running = null));
  }

  /** Send everything taken so far; resolves when the server has it (or the job is over). */
  async flush(): Promise<void> {
    while (this.queue.length && !this.closed) {
      this.kick();
      await this.running;
    }
  }

  /** Stop taking lines (the job is over). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async drain(): Promise<void> {
    while (this.queue.length && !this.closed) {
      // One POST carries lines of one step (the URL names it); the queue is in seq order.
      const stepId = this.queue[0]!.stepId;
      let n = 0;
      while (n < this.queue.length && n < this.maxBatch && this.queue[n]!.stepId === stepId) n++;
      const batch = this.queue.slice(0, n).map(({ seq, ts, stream, text }) => ({ seq, ts, stream, text }));
      try {
        await this.client.call(`/steps/${stepId}/logs`, { lines: batch }, accepted);
        this.queue.splice(0, n);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          if (await this.opts.onUnauthorized()) continue;
          this.opts.note(`job over: ${this.queue.length} log lines not sent`);
          this.queue.length = 0;
          this.closed = true;
          return;
        }
        // A batch the server refuses as malformed will be refused forever: say so and move on.
        this.opts.note(`log batch seq ${batch[0]!.seq}..${batch[n - 1]!.seq} refused: ${(err as Error).message}`);
        this.queue.splice(0, n);
      }
    }
  }
}
