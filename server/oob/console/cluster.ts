/**
 * Serial consoles across processes sharing one PostgreSQL (docs/ARCHITECTURE.md, "Console sessions across
 * processes"): the link a ConsoleManager uses when it is not alone. The manager (manager.ts) keeps the session
 * logic; this module holds what crosses the process: the leases and the messages.
 *
 * - Leases (table `leases`, on the database's clock): `console:<machine>` names the one process that holds the
 *   machine's console stream (the owner); `keyboard:<machine>` names the one viewer, on any process, holding its
 *   keyboard (holder `<process>|<viewer id>|<user name>`).
 * - Messages (messages.ts): NOTIFY on one channel (`rackhand_console`), JSON envelopes under NOTIFY's 8,000-byte
 *   payload limit, console bytes in base64, sent in order on one publishing connection, what waits in one statement
 *   (server/db/pg/notify-link.ts), so a machine's output arrives in order everywhere. Everyone receives every
 *   message; each takes those that concern it.
 * - Keys: a viewer's keystrokes are sent by a statement that sends them only while that viewer holds the keyboard
 *   lease (`pg_notify` under `WHERE EXISTS`): the check and the send are one atomic step.
 */
import { sql } from "drizzle-orm";
import { AppError } from "../../../lib/errors";
import { acquireLease, checkOwner, releaseLease, type LeaseState } from "../../db/pg/leases";
import type { PgDb } from "../../db/pg/client";
import { NotifyLink } from "../../db/pg/notify-link";
import type { StoreDb } from "../../db/store";
import type { Logger } from "../../log";
import { CHUNK_BYTES, keyboardHolder, keyboardLeaseName, consoleLeaseName, parseKeyboardHolder, validMessage, type ClusterMessage, type KeyboardHolder } from "./messages";

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
  private readonly db: PgDb;
  private readonly link: NotifyLink;
  private stopped = false;
  private handler: ((m: ClusterMessage) => void) | undefined;
  /** Called when the LISTEN connection comes back after a loss (messages may have been missed meanwhile). */
  onReconnect: (() => void) | undefined;

  constructor(
    db: StoreDb,
    private readonly opts: ClusterOptions,
  ) {
    this.db = db as PgDb;
    this.owner = checkOwner(opts.owner);
    this.link = new NotifyLink({ url: opts.url, channel: opts.channel ?? "rackhand_console", appName: "rackhand-console", label: "console link", log: opts.log, stats: this.stats });
    this.link.onReconnect = () => this.onReconnect?.();
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
    await this.link.start((payload) => this.receive(payload));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.link.stop();
  }

  get connected(): boolean {
    return this.link.connected;
  }

  /** Send messages in order, what waits in one statement (best effort: a message that cannot be sent is counted in stats.dropped). */
  send(...msgs: ClusterMessage[]): void {
    if (this.stopped) return;
    for (const m of msgs) this.link.send([JSON.stringify(m)], m.t);
  }

  /**
   * Send keystrokes to the owner's stream if, and only while, `holder` holds the keyboard of `machineId`: the check
   * and the send are one statement. @returns whether they were sent.
   */
  async sendKeys(machineId: number, holder: KeyboardHolder, data: Buffer): Promise<boolean> {
    const payloads: string[] = [];
    for (let i = 0; i < data.length; i += CHUNK_BYTES) payloads.push(JSON.stringify({ t: "i", m: machineId, o: this.owner, b: data.subarray(i, i + CHUNK_BYTES).toString("base64") } satisfies ClusterMessage));
    if (payloads.length === 0) return true;
    const res = await this.link.withPublisher((c) => {
      if (!c) throw new AppError("CONSOLE_NOT_HELD", "The console's link to the database is down; try again in a moment");
      return c.query(
        `SELECT pg_notify($1, u.p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i)
         WHERE EXISTS (SELECT 1 FROM leases WHERE name = $3 AND holder = $4 AND expires_at >= clock_timestamp())`,
        [this.link.channel, payloads, keyboardLeaseName(machineId), keyboardHolder(holder)],
      );
    });
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
