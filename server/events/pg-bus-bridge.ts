/**
 * The event bus across processes sharing one PostgreSQL (docs/ARCHITECTURE.md, "Live events across processes"):
 * every event published on this process's bus is sent with NOTIFY, and every other process's events are published on
 * this bus. In-process subscribers (the socket gateway, the orchestrator's wake-ups, netboot) then see the whole
 * site's events, whichever process committed them; each gateway emits them to its own browsers.
 *
 * - Order: one publishing connection; what waits goes in one statement, in order (PostgreSQL delivers a session's
 *   notifications in the order they were sent). Each message carries the origin and a sequence number.
 * - Size: NOTIFY payloads stop at 8,000 bytes; an event is sent as base64 (its size in bytes is its length), and a
 *   bigger one (a batch of log lines) goes as numbered chunks, put together again before it is published.
 * - Loss: while a connection is down, or while more than `maxPending` events wait to be sent, events are not carried
 *   (counted in `stats.dropped`; a receiver counts the gaps it sees in `stats.gaps`). Both connections reconnect with backoff. Browsers backfill on reconnect (events since
 *   their last id, log lines since their seq), and the orchestrator's tick does not depend on wake-ups.
 */
import pg from "pg";
import type { LiveEvent } from "../../lib/live-events";
import { backoffDelay } from "../../lib/retry";
import type { Logger } from "../log";
import type { EventBus } from "./bus";

/** Room for the envelope in a NOTIFY payload (8,000 bytes at most). */
const CHUNK_CHARS = 7000;
/** Events sent in one statement at most (a few MB of payloads at the worst). */
const SEND_BATCH = 500;

interface Envelope {
  /** Origin process. */
  o: string;
  /** Sequence number of the event at its origin. */
  s: number;
  /** Chunk i of n (only for events split in chunks). */
  i?: number;
  n?: number;
  /** The event's JSON, UTF-8 in base64 (or a chunk of that). */
  d: string;
}

export interface BridgeStats {
  sent: number;
  received: number;
  /** Local events not sent because the publishing connection was down. */
  dropped: number;
  /** Events of other processes missed (sequence gaps seen). */
  gaps: number;
}

export class PgBusBridge {
  readonly stats: BridgeStats = { sent: 0, received: 0, dropped: 0, gaps: 0 };
  private readonly remote = new WeakSet<object>();
  private readonly lastSeq = new Map<string, number>();
  private readonly partial = new Map<string, { s: number; parts: string[] }>();
  private listener: pg.Client | undefined;
  private publisher: pg.Client | undefined;
  private publishing: Promise<unknown> = Promise.resolve();
  private flushing: Promise<void> | null = null;
  private readonly queue: { type: string; envelopes: Envelope[] }[] = [];
  private unsubscribe: (() => void) | undefined;
  private seq = 0;
  private pending = 0;
  private overflowing = false;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly bus: EventBus,
    private readonly url: string,
    /** `maxPending`: events waiting to be sent before new ones are dropped (default 10,000). */
    private readonly opts: { origin: string; channel?: string; log?: Logger; maxPending?: number },
  ) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.channel)) throw new Error(`bus channel must be a lower-case SQL identifier, not ${JSON.stringify(this.channel.slice(0, 80))}`);
  }

  private get channel(): string {
    return this.opts.channel ?? "rackhand_bus";
  }

  /** Connects both connections (resolves once listening), then carries events until stop(). */
  async start(): Promise<void> {
    this.stopped = false;
    this.unsubscribe = this.bus.subscribe((e) => this.send(e));
    await Promise.all([this.connectListener(0), this.connectPublisher(0)]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.publishing.catch(() => undefined);
    await Promise.all([this.listener?.end().catch(() => undefined), this.publisher?.end().catch(() => undefined)]);
    this.listener = this.publisher = undefined;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private client(role: string): pg.Client {
    const c = new pg.Client({ connectionString: this.url, application_name: `rackhand-bus-${role}` });
    c.on("error", () => {}); // reported by 'end'
    return c;
  }

  private async connectListener(attempt: number): Promise<void> {
    if (this.stopped) return;
    const c = this.client("listen");
    try {
      await c.connect();
      c.on("notification", (m) => {
        if (m.channel === this.channel && m.payload) this.receive(m.payload);
      });
      await c.query(`LISTEN ${this.channel}`);
      c.once("end", () => {
        if (this.listener !== c || this.stopped) return;
        this.listener = undefined;
        this.opts.log?.warn("event bus bridge: lost its LISTEN connection; reconnecting");
        this.later(backoffDelay(0, { baseMs: 200, maxMs: 5000 }), () => void this.connectListener(1));
      });
      this.listener = c;
    } catch (err) {
      void c.end().catch(() => undefined);
      if (attempt === 0) throw err;
      this.later(backoffDelay(attempt, { baseMs: 200, maxMs: 5000 }), () => void this.connectListener(attempt + 1));
    }
  }

  private async connectPublisher(attempt: number): Promise<void> {
    if (this.stopped) return;
    const c = this.client("notify");
    try {
      await c.connect();
      c.once("end", () => {
        if (this.publisher !== c || this.stopped) return;
        this.publisher = undefined;
        this.later(backoffDelay(0, { baseMs: 200, maxMs: 5000 }), () => void this.connectPublisher(1));
      });
      this.publisher = c;
    } catch (err) {
      void c.end().catch(() => undefined);
      if (attempt === 0) throw err;
      this.later(backoffDelay(attempt, { baseMs: 200, maxMs: 5000 }), () => void this.connectPublisher(attempt + 1));
    }
  }

  /** A local event: sent, in order, unless it came from another process. */
  private send(e: LiveEvent): void {
    if (this.remote.has(e)) return;
    const s = ++this.seq;
    // Base64 of the UTF-8 JSON: its length is its size in bytes, and nothing in it is escaped again in the envelope,
    // so a chunk of CHUNK_CHARS always fits (JSON text of non-ASCII, quotes or backslashes can be 3× its length).
    const data = Buffer.from(JSON.stringify(e), "utf8").toString("base64");
    const envelopes: Envelope[] = [];
    if (data.length <= CHUNK_CHARS) envelopes.push({ o: this.opts.origin, s, d: data });
    else {
      const n = Math.ceil(data.length / CHUNK_CHARS);
      for (let i = 0; i < n; i++) envelopes.push({ o: this.opts.origin, s, i, n, d: data.slice(i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS) });
    }
    // A database slower than the events (or gone) must not grow the queue without end: beyond the cap, drop.
    if (this.pending >= (this.opts.maxPending ?? 10_000)) {
      this.stats.dropped++;
      if (!this.overflowing) this.opts.log?.warn("event bus bridge: send queue full; events are dropped until it drains", { pending: this.pending });
      this.overflowing = true;
      return;
    }
    this.overflowing = false;
    this.pending++;
    this.queue.push({ type: e.type, envelopes });
    // Started after the current task: the events it publishes go in one statement.
    if (!this.flushing) this.publishing = this.flushing = Promise.resolve().then(() => this.flush()).finally(() => (this.flushing = null));
  }

  /**
   * Send what waits, in order, many events a round trip: one statement NOTIFYs every payload of an array, in array
   * order (`unnest` keeps it). One round trip per event fell behind under load: in the three-process test a
   * CPU-starved process's events reached the others 3–5 s late.
   */
  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, SEND_BATCH);
      this.pending -= batch.length;
      const c = this.publisher;
      if (!c) {
        this.stats.dropped += batch.length;
        continue;
      }
      const payloads = batch.flatMap((b) => b.envelopes.map((env) => JSON.stringify(env)));
      try {
        await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i", [this.channel, payloads]);
        this.stats.sent += batch.length;
      } catch (err) {
        this.stats.dropped += batch.length;
        this.opts.log?.warn("event bus bridge: events were not sent", { events: batch.length, types: [...new Set(batch.map((b) => b.type))].join(","), error: String(err) });
      }
    }
  }

  private receive(payload: string): void {
    let env: Envelope;
    try {
      env = JSON.parse(payload) as Envelope;
    } catch {
      return;
    }
    if (typeof env.o !== "string" || typeof env.s !== "number" || typeof env.d !== "string" || env.o === this.opts.origin) return;
    let json = env.d;
    if (env.n !== undefined) {
      const part = this.partial.get(env.o);
      if (env.i === 0) this.partial.set(env.o, { s: env.s, parts: [env.d] });
      else if (part && part.s === env.s && part.parts.length === env.i) part.parts.push(env.d);
      else {
        this.partial.delete(env.o); // a chunk went missing: the event is lost (counted as a gap below)
        return;
      }
      const cur = this.partial.get(env.o)!;
      if (cur.parts.length < env.n) return;
      this.partial.delete(env.o);
      json = cur.parts.join("");
    }
    const last = this.lastSeq.get(env.o);
    if (last !== undefined && env.s > last + 1) this.stats.gaps += env.s - last - 1;
    this.lastSeq.set(env.o, Math.max(env.s, last ?? 0));
    let e: LiveEvent;
    try {
      e = JSON.parse(Buffer.from(json, "base64").toString("utf8")) as LiveEvent;
    } catch {
      return;
    }
    this.stats.received++;
    this.remote.add(e);
    this.bus.publish(e);
  }
}
