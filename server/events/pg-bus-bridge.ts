/**
 * The event bus across processes sharing one PostgreSQL (docs/ARCHITECTURE.md, "Live events across processes"):
 * every event published on this process's bus is sent with NOTIFY, and every other process's events are published on
 * this bus. In-process subscribers (the socket gateway, the orchestrator's wake-ups, netboot) then see the whole
 * site's events, whichever process committed them; each gateway emits them to its own browsers.
 *
 * - Connections, order, batching and loss while a connection is down: server/db/pg/notify-link.ts. Each message
 *   carries the origin and a sequence number.
 * - Size: NOTIFY payloads stop at 8,000 bytes; an event is sent as base64 (its size in bytes is its length), and a
 *   bigger one (a batch of log lines) goes as numbered chunks, put together again before it is published.
 * - Loss: while a connection is down, or while more than `maxPending` events wait to be sent, events are not carried
 *   (counted in `stats.dropped`; a receiver counts the gaps it sees in `stats.gaps`). Browsers backfill on reconnect
 *   (events since their last id, log lines since their seq), and the orchestrator's tick does not depend on wake-ups.
 */
import type { LiveEvent } from "../../lib/live-events";
import { NotifyLink } from "../db/pg/notify-link";
import type { Logger } from "../log";
import type { EventBus } from "./bus";

/** Room for the envelope in a NOTIFY payload (8,000 bytes at most). */
const CHUNK_CHARS = 7000;
/**
 * Domain events wait 5 ms for others to share their NOTIFY (13 → ~6 statements per deploy job). The console link
 * does not: with the same wait, gateway-console.pg.test.ts failed once in a clean-clone CI (a viewer on the other
 * process held bytes other than those sent); the cause was not found, so the console link keeps its earlier timing.
 */
const BUS_FLUSH_DELAY_MS = 5;

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
  private readonly link: NotifyLink;
  private unsubscribe: (() => void) | undefined;
  private seq = 0;

  constructor(
    private readonly bus: EventBus,
    url: string,
    /** `maxPending`: events waiting to be sent before new ones are dropped (default 10,000). */
    private readonly opts: { origin: string; channel?: string; log?: Logger; maxPending?: number },
  ) {
    this.link = new NotifyLink({ url, channel: opts.channel ?? "rackhand_bus", appName: "rackhand-bus", label: "event bus bridge", log: opts.log, maxPending: opts.maxPending, stats: this.stats, flushDelayMs: BUS_FLUSH_DELAY_MS });
  }

  /** Connects both connections (resolves once listening), then carries events until stop(). */
  async start(): Promise<void> {
    this.unsubscribe = this.bus.subscribe((e) => this.send(e));
    await this.link.start((payload) => this.receive(payload));
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.link.stop();
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
    this.link.send(
      envelopes.map((env) => JSON.stringify(env)),
      e.type,
    );
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
