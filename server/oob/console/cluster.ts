/**
 * Serial consoles across processes sharing one PostgreSQL (docs/ARCHITECTURE.md, "Console sessions across
 * processes"): the link a ConsoleManager uses when it is not alone. The manager (manager.ts) keeps the session
 * logic; this module holds what crosses the process: the leases and the messages.
 *
 * - Leases (table `leases`, on the database's clock): `console:<machine>` names the one process that holds the
 *   machine's console stream (the owner); `keyboard:<machine>` names the one viewer, on any process, holding its
 *   keyboard (holder `<process>|<viewer id>|<user name>`).
 * - Messages: NOTIFY on one channel (`rackhand_console`), JSON envelopes under NOTIFY's 8,000-byte payload limit,
 *   console bytes in base64, sent one after the other on one publishing connection (PostgreSQL delivers a session's
 *   notifications in the order they were sent), so a machine's output arrives in order everywhere. Everyone
 *   receives every message; each takes those that concern it.
 * - Keys: a viewer's keystrokes are sent by a statement that sends them only while that viewer holds the keyboard
 *   lease (`pg_notify` under `WHERE EXISTS`): the check and the send are one atomic step.
 */
import { sql } from "drizzle-orm";
import pg from "pg";
import { AppError } from "../../../lib/errors";
import { backoffDelay } from "../../../lib/retry";
import { acquireLease, checkOwner, releaseLease, type LeaseState } from "../../db/pg/leases";
import type { PgDb } from "../../db/pg/client";
import type { StoreDb } from "../../db/store";
import type { Logger } from "../../log";

/** Raw console bytes per message: base64 makes 6,668 characters of them, leaving room for the envelope. */
export const CHUNK_BYTES = 5000;

export interface ConsoleStatus {
  machineId: number;
  state: "opening" | "open" | "closed" | "error";
  /** Seconds until the next attempt to reopen a failed or dropped console (while anyone watches). */
  retryInS?: number;
  /** User name of the viewer holding the keyboard. */
  holder: string | null;
  /** Viewers on every process. */
  viewers: number;
  error?: string;
}

/** A viewer on some process: its id there (a socket id) and its user name. */
export interface KeyboardHolder {
  process: string;
  viewerId: string;
  name: string;
}

export type ClusterMessage =
  /** Console output of the owner: `s` numbers the messages of this owner epoch `e` from 1. */
  | { t: "d"; m: number; o: string; e: number; s: number; b: string }
  /** The owner's status (viewers counted on every process). */
  | { t: "st"; m: number; o: string; e: number; st: ConsoleStatus }
  /** Process `o` has `n` viewers of machine `m` (sent on change and every renewal). */
  | { t: "w"; m: number; o: string; n: number }
  /** The keyboard of `m` changed hands: the owner re-reads the lease. */
  | { t: "k"; m: number; o: string }
  /** Process `o` asks the owner for the recent output (request `r`). */
  | { t: "q"; m: number; o: string; r: number }
  /** Reply to request `r` of process `to`: chunk `i` of `n` of the recent output, up to message `s` of epoch `e`. */
  | { t: "r"; m: number; o: string; e: number; to: string; r: number; s: number; i: number; n: number; b: string; st?: ConsoleStatus }
  /** Keystrokes for the owner's stream (sent only while the sender's viewer held the keyboard). */
  | { t: "i"; m: number; o: string; b: string };

export interface ClusterOptions {
  /** This process's name (processOwner()). */
  owner: string;
  /** The database's URL: the link's own two connections (one LISTEN, one publishing). */
  url: string;
  channel?: string;
  log?: Logger;
  /** How long an owner or keyboard lease runs without renewal (default 15 s): the longest a dead owner delays a takeover. */
  leaseMs?: number;
  /** Renewals, viewer counts and takeover attempts (default 5 s); at most half of leaseMs. */
  renewMs?: number;
  /** Output is gathered for this long before it is sent (default 30 ms; 0: each chunk at once). */
  batchMs?: number;
  /** How long a late joiner waits for the owner's recent output (default 3 s) before it shows what it has. */
  snapshotTimeoutMs?: number;
}

const MACHINE_MAX = 2 ** 31 - 1;
/** A snapshot (64 KiB of recent output at most, in CHUNK_BYTES pieces, and its status) never needs more messages. */
const SNAPSHOT_MAX_PARTS = 32;
const VIEWER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** @throws AppError VALIDATION unless a positive 32-bit machine id. */
export function checkMachineId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > MACHINE_MAX) throw new AppError("VALIDATION", `console: machine id must be an integer from 1 to ${MACHINE_MAX}`);
  return id;
}

/** A viewer id (a socket id): 1-64 of A-Z a-z 0-9 _ -. @throws AppError VALIDATION */
export function checkViewerId(id: unknown): string {
  if (typeof id !== "string" || !VIEWER_ID.test(id)) throw new AppError("VALIDATION", "console: a viewer id is 1-64 of A-Z a-z 0-9 _ -");
  return id;
}

/** A viewer's user name as shown to the others: 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit. @throws AppError VALIDATION */
export function checkViewerName(name: unknown): string {
  if (typeof name !== "string" || !USER_NAME.test(name)) throw new AppError("VALIDATION", "console: a viewer name is 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit");
  return name;
}

export const consoleLeaseName = (machineId: number) => `console:${machineId}`;
export const keyboardLeaseName = (machineId: number) => `keyboard:${machineId}`;

export function keyboardHolder(h: KeyboardHolder): string {
  return `${checkOwner(h.process)}|${checkViewerId(h.viewerId)}|${checkViewerName(h.name)}`;
}

export function parseKeyboardHolder(s: string): KeyboardHolder | null {
  const [process, viewerId, name, ...rest] = s.split("|");
  if (rest.length || !process || !viewerId || !name) return null;
  try {
    return { process: checkOwner(process), viewerId: checkViewerId(viewerId), name: checkViewerName(name) };
  } catch {
    return null;
  }
}

const ms = (n: number) => sql`(${Math.trunc(n)}::int * interval '1 millisecond')`;

export interface ClusterStats {
  sent: number;
  received: number;
  /** Messages not sent (the publishing connection down, or the queue full). */
  dropped: number;
  /** Output messages of an owner missed (sequence gaps seen by a viewer process). */
  gaps: number;
}

/** The PostgreSQL link of a ConsoleManager: leases, and the messages on its own two connections. */
export class ConsoleCluster {
  readonly owner: string;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly batchMs: number;
  readonly snapshotTimeoutMs: number;
  readonly stats: ClusterStats = { sent: 0, received: 0, dropped: 0, gaps: 0 };
  private readonly channel: string;
  private readonly db: PgDb;
  private listener: pg.Client | undefined;
  private publisher: pg.Client | undefined;
  private publishing: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private handler: ((m: ClusterMessage) => void) | undefined;
  /** Called when the LISTEN connection comes back after a loss (messages may have been missed meanwhile). */
  onReconnect: (() => void) | undefined;

  constructor(
    db: StoreDb,
    private readonly opts: ClusterOptions,
  ) {
    this.db = db as PgDb;
    this.owner = checkOwner(opts.owner);
    this.channel = opts.channel ?? "rackhand_console";
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.channel)) throw new Error(`console channel must be a lower-case SQL identifier, not ${JSON.stringify(this.channel.slice(0, 80))}`);
    this.leaseMs = opts.leaseMs ?? 15_000;
    this.renewMs = opts.renewMs ?? 5_000;
    this.batchMs = opts.batchMs ?? 30;
    this.snapshotTimeoutMs = opts.snapshotTimeoutMs ?? 3_000;
    if (!(this.renewMs > 0 && this.renewMs * 2 <= this.leaseMs)) throw new Error("console cluster: renewMs must be positive and at most half of leaseMs");
  }

  /** Connects (resolves once listening); `handler` gets every other process's messages, and this one's own. */
  async start(handler: (m: ClusterMessage) => void): Promise<void> {
    this.stopped = false;
    this.handler = handler;
    await Promise.all([this.connectListener(0), this.connectPublisher(0)]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.publishing.catch(() => undefined);
    await Promise.all([this.listener?.end().catch(() => undefined), this.publisher?.end().catch(() => undefined)]);
    this.listener = this.publisher = undefined;
  }

  get connected(): boolean {
    return !!this.listener && !!this.publisher;
  }

  private later(delay: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, delay);
    t.unref();
    this.timers.add(t);
  }

  private client(role: string): pg.Client {
    const c = new pg.Client({ connectionString: this.opts.url, application_name: `rackhand-console-${role}` });
    c.on("error", () => {}); // reported by 'end'
    return c;
  }

  private async connectListener(attempt: number): Promise<void> {
    if (this.stopped) return;
    const c = this.client("listen");
    try {
      await c.connect();
      c.on("notification", (n) => {
        if (n.channel === this.channel && n.payload) this.receive(n.payload);
      });
      await c.query(`LISTEN ${this.channel}`);
      c.once("end", () => {
        if (this.listener !== c || this.stopped) return;
        this.listener = undefined;
        this.opts.log?.warn("console link: lost its LISTEN connection; reconnecting");
        this.later(backoffDelay(0, { baseMs: 200, maxMs: 5000 }), () => void this.connectListener(1));
      });
      this.listener = c;
      if (attempt > 0) this.onReconnect?.();
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

  /** Queue `fn` on the publishing connection, after every earlier send. */
  private onPublisher<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const run = this.publishing.then(async () => {
      this.pending--;
      const c = this.publisher;
      if (!c) throw new AppError("CONSOLE_NOT_HELD", "The console's link to the database is down; try again in a moment");
      return fn(c);
    });
    this.pending++;
    this.publishing = run.catch(() => undefined);
    return run;
  }

  /** Send messages in order (best effort: a message that cannot be sent is counted in stats.dropped). */
  send(...msgs: ClusterMessage[]): void {
    if (this.stopped) return;
    // A database slower than the consoles (or gone) must not grow the queue without end.
    if (this.pending >= 10_000) {
      this.stats.dropped += msgs.length;
      return;
    }
    void this.onPublisher(async (c) => {
      for (const m of msgs) {
        await c.query("SELECT pg_notify($1, $2)", [this.channel, JSON.stringify(m)]);
        this.stats.sent++;
      }
    }).catch((err: unknown) => {
      this.stats.dropped += msgs.length;
      this.opts.log?.debug("console link: a message was not sent", { error: String(err) });
    });
  }

  /**
   * Send keystrokes to the owner's stream if, and only while, `holder` holds the keyboard of `machineId`: the check
   * and the send are one statement. @returns whether they were sent.
   */
  async sendKeys(machineId: number, holder: KeyboardHolder, data: Buffer): Promise<boolean> {
    const payloads: string[] = [];
    for (let i = 0; i < data.length; i += CHUNK_BYTES) payloads.push(JSON.stringify({ t: "i", m: machineId, o: this.owner, b: data.subarray(i, i + CHUNK_BYTES).toString("base64") } satisfies ClusterMessage));
    if (payloads.length === 0) return true;
    const res = await this.onPublisher((c) =>
      c.query(
        `SELECT pg_notify($1, u.p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i)
         WHERE EXISTS (SELECT 1 FROM leases WHERE name = $3 AND holder = $4 AND expires_at >= clock_timestamp())`,
        [this.channel, payloads, keyboardLeaseName(machineId), keyboardHolder(holder)],
      ),
    );
    if (res.rowCount) this.stats.sent += res.rowCount;
    return (res.rowCount ?? 0) > 0;
  }

  private receive(payload: string): void {
    let m: unknown;
    try {
      m = JSON.parse(payload);
    } catch {
      return;
    }
    const msg = validMessage(m);
    if (!msg) {
      this.opts.log?.debug("console link: a malformed message was ignored");
      return;
    }
    this.stats.received++;
    try {
      this.handler?.(msg);
    } catch (err) {
      this.opts.log?.error("console link: handling a message failed", { type: msg.t, error: String(err) });
    }
  }

  // --- leases ---

  /** Take (or renew) the ownership of a machine's console stream. */
  claimConsole(machineId: number): Promise<LeaseState> {
    return acquireLease(this.db, consoleLeaseName(machineId), this.owner, this.leaseMs);
  }

  releaseConsole(machineId: number): Promise<boolean> {
    return releaseLease(this.db, consoleLeaseName(machineId), this.owner);
  }

  /** Take the keyboard of a machine for a viewer, from whoever held it. */
  async takeKeyboard(machineId: number, h: KeyboardHolder): Promise<void> {
    const holder = keyboardHolder(h);
    await this.db.execute(sql`
      INSERT INTO leases (name, holder, epoch, expires_at) VALUES (${keyboardLeaseName(machineId)}, ${holder}, 1, clock_timestamp() + ${ms(this.leaseMs)})
      ON CONFLICT (name) DO UPDATE SET
        holder = excluded.holder,
        epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
        expires_at = excluded.expires_at`);
  }

  /** Give the keyboard up, if that viewer still holds it. @returns whether it did. */
  async releaseKeyboard(machineId: number, h: KeyboardHolder): Promise<boolean> {
    const res = await this.db.execute(sql`
      UPDATE leases SET expires_at = clock_timestamp() - interval '1 millisecond'
      WHERE name = ${keyboardLeaseName(machineId)} AND holder = ${keyboardHolder(h)} AND expires_at >= clock_timestamp()`);
    return res.rowCount === 1;
  }

  /** Extend the keyboard leases these viewers hold; @returns the machines whose keyboard they still hold. */
  async renewKeyboards(held: { machineId: number; holder: KeyboardHolder }[]): Promise<Set<number>> {
    if (held.length === 0) return new Set();
    const names = held.map((k) => keyboardLeaseName(k.machineId));
    const holders = held.map((k) => keyboardHolder(k.holder));
    const res = await this.db.execute<{ name: string }>(sql`
      UPDATE leases SET expires_at = clock_timestamp() + ${ms(this.leaseMs)}
      FROM unnest(${sql.param(names)}::text[], ${sql.param(holders)}::text[]) AS k(n, h)
      WHERE leases.name = k.n AND leases.holder = k.h AND leases.expires_at >= clock_timestamp()
      RETURNING leases.name`);
    return new Set(res.rows.map((r) => Number(r.name.slice("keyboard:".length))));
  }

  /** Who holds the keyboard of a machine now (null: nobody, or a lapsed lease). */
  async readKeyboard(machineId: number): Promise<KeyboardHolder | null> {
    const res = await this.db.execute<{ holder: string }>(sql`
      SELECT holder FROM leases WHERE name = ${keyboardLeaseName(machineId)} AND expires_at >= clock_timestamp()`);
    const row = res.rows[0];
    return row ? parseKeyboardHolder(row.holder) : null;
  }
}

const isInt = (v: unknown, min = 0): v is number => typeof v === "number" && Number.isInteger(v) && v >= min && v <= MACHINE_MAX * 2 ** 20;
const isStr = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;
const isB64 = (v: unknown): v is string => isStr(v, 8000) && /^[A-Za-z0-9+/]*={0,2}$/.test(v);
const isProc = (v: unknown): v is string => isStr(v, 128) && /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(v);

function validStatus(v: unknown): ConsoleStatus | null {
  if (!v || typeof v !== "object") return null;
  const s = v as Record<string, unknown>;
  if (!isInt(s.machineId, 1) || !["opening", "open", "closed", "error"].includes(s.state as string) || !isInt(s.viewers)) return null;
  if (s.holder !== null && !(isStr(s.holder, 64) && USER_NAME.test(s.holder))) return null;
  if (s.error !== undefined && !isStr(s.error, 2000)) return null;
  if (s.retryInS !== undefined && !isInt(s.retryInS)) return null;
  return {
    machineId: s.machineId,
    state: s.state as ConsoleStatus["state"],
    holder: s.holder,
    viewers: s.viewers,
    ...(s.error !== undefined ? { error: s.error } : {}),
    ...(s.retryInS !== undefined ? { retryInS: s.retryInS } : {}),
  };
}

/** A message from the channel, checked field by field (another process, another version, or anyone with NOTIFY rights). */
export function validMessage(v: unknown): ClusterMessage | null {
  if (!v || typeof v !== "object") return null;
  const m = v as Record<string, unknown>;
  if (!isInt(m.m, 1) || m.m > MACHINE_MAX || !isProc(m.o)) return null;
  switch (m.t) {
    case "d":
      return isInt(m.e, 1) && isInt(m.s, 1) && isB64(m.b) ? (m as ClusterMessage) : null;
    case "st": {
      const st = validStatus(m.st);
      return isInt(m.e, 1) && st && st.machineId === m.m ? { t: "st", m: m.m, o: m.o, e: m.e, st } : null;
    }
    case "w":
      return isInt(m.n) ? (m as ClusterMessage) : null;
    case "k":
      return m as ClusterMessage;
    case "q":
      return isInt(m.r, 1) ? (m as ClusterMessage) : null;
    case "r": {
      if (!(isInt(m.e, 1) && isProc(m.to) && isInt(m.r, 1) && isInt(m.s) && isInt(m.i) && isInt(m.n, 1) && m.n <= SNAPSHOT_MAX_PARTS && m.i < m.n && isB64(m.b))) return null;
      if (m.st === undefined) return m as ClusterMessage;
      const st = validStatus(m.st);
      return st && st.machineId === m.m ? ({ ...m, st } as ClusterMessage) : null;
    }
    case "i":
      return isB64(m.b) ? (m as ClusterMessage) : null;
    default:
      return null;
  }
}
