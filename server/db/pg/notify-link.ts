/**
 * One PostgreSQL LISTEN/NOTIFY channel for a process (the event bus bridge, server/events/pg-bus-bridge.ts, and the
 * console link, server/oob/console/cluster.ts): two connections of its own, one that LISTENs and one that sends.
 *
 * - Receiving: every payload on the channel goes to the handler, this process's own included. A lost LISTEN
 *   connection is reopened with backoff (and LISTENs again); `onReconnect` tells the owner that payloads may have
 *   been missed meanwhile.
 * - Sending: items (each one or more payloads) wait in one queue and go out in order, what waits in one statement
 *   (`pg_notify` over an array, `unnest … WITH ORDINALITY` keeps its order; PostgreSQL delivers a session's
 *   notifications in the order they were sent). One round trip per payload fell behind under load: in the
 *   three-process test a CPU-starved process's events reached the others 3–5 s late.
 * - Loss: while the sending connection is down, or beyond `maxPending` waiting items, items are dropped (counted in
 *   `stats.dropped`), never sent twice: a statement that failed is not repeated.
 * - Size: NOTIFY takes payloads under 8,000 bytes and no NUL; another is dropped alone, before it can fail a statement
 *   with the others (the owners encode and cut their payloads to fit: JSON, base64, chunks).
 */
import pg from "pg";
import { backoffDelay } from "../../../lib/retry";
import type { Logger } from "../../log";

/** NOTIFY's payload limit: shorter than 8,000 bytes (PostgreSQL's default build). */
export const NOTIFY_MAX_BYTES = 7999;
/** Items sent in one statement at most (a few MB of payloads at the worst). */
const SEND_BATCH = 500;
const BACKOFF = { baseMs: 200, maxMs: 5000 };

export interface NotifyLinkOptions {
  url: string;
  /** A lower-case SQL identifier (it is written into LISTEN). */
  channel: string;
  /** The connections' application_name is `<appName>-listen` and `<appName>-notify`. */
  appName: string;
  /** Names the link in errors and log lines ("event bus bridge"). */
  label: string;
  log?: Logger;
  /** Items waiting to be sent before new ones are dropped (default 10,000). */
  maxPending?: number;
  /** Counters to add to (the owner's stats): items sent, items dropped. */
  stats?: { sent: number; dropped: number };
  /**
   * How long the first item queued waits for others to share its statement (ms); 0 (the default): until the current
   * turn of the event loop's I/O callbacks is done. What other processes see comes that much later.
   */
  flushDelayMs?: number;
}

type Entry = { payloads: string[]; tag: string } | { run: (c: pg.Client | undefined) => Promise<void> };

export class NotifyLink {
  readonly stats: { sent: number; dropped: number };
  /** Called when the LISTEN connection is back after a loss. */
  onReconnect: (() => void) | undefined;
  private listener: pg.Client | undefined;
  private publisher: pg.Client | undefined;
  private handler: ((payload: string) => void) | undefined;
  private readonly queue: Entry[] = [];
  private flushing: Promise<void> | null = null;
  private pending = 0;
  private overflowing = false;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: NotifyLinkOptions) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.channel)) throw new Error(`${opts.label}: the channel must be a lower-case SQL identifier, not ${JSON.stringify(opts.channel.slice(0, 80))}`);
    this.stats = opts.stats ?? { sent: 0, dropped: 0 };
  }

  /** Connects both connections (resolves once listening; @throws the first connection error). */
  async start(handler: (payload: string) => void): Promise<void> {
    this.stopped = false;
    this.handler = handler;
    await Promise.all([this.connectListener(0), this.connectPublisher(0)]);
  }

  /** Sends what already waits, then closes both connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.flushing?.catch(() => undefined);
    await Promise.all([this.listener?.end().catch(() => undefined), this.publisher?.end().catch(() => undefined)]);
    this.listener = this.publisher = undefined;
  }

  get channel(): string {
    return this.opts.channel;
  }

  get connected(): boolean {
    return !!this.listener && !!this.publisher;
  }

  /**
   * Queue one item (its payloads go out together, after everything queued before). `tag` names it in a log line if
   * it is lost. @returns false when it was dropped at once (stopped, queue full, a payload too big).
   */
  send(payloads: string[], tag: string): boolean {
    if (this.stopped) return false;
    // Either would fail the whole statement, and with it every other item sent in it.
    if (payloads.some((p) => p.includes("\u0000") || Buffer.byteLength(p, "utf8") > NOTIFY_MAX_BYTES)) {
      this.stats.dropped++;
      this.opts.log?.warn(`${this.opts.label}: a message over NOTIFY's 8,000 bytes (or with a NUL) was dropped`, { type: tag });
      return false;
    }
    // A database slower than the senders (or gone) must not grow the queue without end: beyond the cap, drop.
    if (this.pending >= (this.opts.maxPending ?? 10_000)) {
      this.stats.dropped++;
      if (!this.overflowing) this.opts.log?.warn(`${this.opts.label}: send queue full; messages are dropped until it drains`, { pending: this.pending });
      this.overflowing = true;
      return false;
    }
    this.overflowing = false;
    this.pending++;
    this.enqueue({ payloads, tag });
    return true;
  }

  /** Run `fn` on the sending connection (undefined while it is down), after everything queued before it. */
  withPublisher<T>(fn: (c: pg.Client | undefined) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // Through a promise, so that a throw in fn rejects (and never stops the queue).
      this.enqueue({ run: (c) => Promise.resolve(c).then(fn).then(resolve, reject) });
    });
  }

  private enqueue(e: Entry): void {
    this.queue.push(e);
    // Started flushDelayMs later (the bus bridge: 5 ms), or after this turn of the event loop's I/O callbacks: what is
    // queued meanwhile goes in the same statement. Started after the current task only, a busy process sent a
    // statement for nearly every step's change (~13 per deploy job in bench:deploy --db postgres, each a round trip
    // whose write cost ~0.1 ms of CPU on a loaded 2-core host).
    const delay = this.opts.flushDelayMs ?? 0;
    if (!this.flushing) this.flushing = new Promise<void>((r) => (delay > 0 ? setTimeout(r, delay) : setImmediate(r))).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if ("run" in head) {
          this.queue.shift();
          await head.run(this.publisher);
          continue;
        }
        let n = 0;
        while (n < this.queue.length && n < SEND_BATCH && "payloads" in this.queue[n]!) n++;
        const batch = this.queue.splice(0, n) as { payloads: string[]; tag: string }[];
        this.pending -= batch.length;
        await this.sendBatch(batch);
      }
    } finally {
      // Cleared in the same step as the last look at the queue: an item queued later starts a new flush.
      this.flushing = null;
    }
  }

  private async sendBatch(batch: { payloads: string[]; tag: string }[]): Promise<void> {
    const c = this.publisher;
    if (!c) {
      this.stats.dropped += batch.length;
      return;
    }
    try {
      await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i", [this.opts.channel, batch.flatMap((b) => b.payloads)]);
      this.stats.sent += batch.length;
    } catch (err) {
      this.stats.dropped += batch.length;
      this.opts.log?.warn(`${this.opts.label}: messages were not sent`, { messages: batch.length, types: [...new Set(batch.map((b) => b.tag))].join(","), error: String(err) });
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private client(role: "listen" | "notify"): pg.Client {
    const c = new pg.Client({ connectionString: this.opts.url, application_name: `${this.opts.appName}-${role}` });
    c.on("error", () => {}); // reported by 'end'
    return c;
  }

  /** Open a connection, retrying with backoff; `ready` sets it up before it counts as open. */
  private async connect(role: "listen" | "notify", attempt: number, ready: (c: pg.Client) => Promise<void>): Promise<void> {
    if (this.stopped) return;
    const c = this.client(role);
    const slot = role === "listen" ? "listener" : "publisher";
    try {
      await c.connect();
      await ready(c);
      c.once("end", () => {
        if (this[slot] !== c || this.stopped) return;
        this[slot] = undefined;
        if (role === "listen") this.opts.log?.warn(`${this.opts.label}: lost its LISTEN connection; reconnecting`);
        this.later(backoffDelay(0, BACKOFF), () => void this.connect(role, 1, ready));
      });
      if (this.stopped) {
        void c.end().catch(() => undefined);
        return;
      }
      this[slot] = c;
      if (role === "listen" && attempt > 0) this.onReconnect?.();
    } catch (err) {
      void c.end().catch(() => undefined);
      if (attempt === 0) throw err;
      this.later(backoffDelay(attempt, BACKOFF), () => void this.connect(role, attempt + 1, ready));
    }
  }

  private connectListener(attempt: number): Promise<void> {
    return this.connect("listen", attempt, async (c) => {
      c.on("notification", (m) => {
        if (m.channel === this.opts.channel && m.payload) this.handler?.(m.payload);
      });
      await c.query(`LISTEN ${this.opts.channel}`);
    });
  }

  private connectPublisher(attempt: number): Promise<void> {
    return this.connect("notify", attempt, async () => {});
  }
}
