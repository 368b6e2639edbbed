import os from "node:os";
import { sql, type SQL } from "drizzle-orm";
import type pg from "pg";
import type { PgDb } from "./client";

/**
 * What several Rackhand processes sharing one PostgreSQL need to divide the work without a coordinator of their own
 * (docs/ARCHITECTURE.md, "PostgreSQL"). Every deadline is computed from the database's clock (clock_timestamp()),
 * never from a process's, so skewed hosts agree on who holds what.
 *
 * - Step leases: a server step is run by the process holding its lease (steps.lease_owner, steps.lease_expires_at),
 *   taken with SELECT … FOR UPDATE SKIP LOCKED and renewed while the step runs. A process that dies stops renewing;
 *   once the lease lapses another process takes the step over (server steps are idempotent).
 * - Named leases (table `leases`): one holder per name until it lapses, `epoch` growing at each change of holder
 *   (a fencing token). The netboot owner of a provisioning network is such a lease (LeaderLease), and so is the
 *   right to sweep one BMC in one power-sync interval (claimBmcSweeps).
 * - BMC exclusion: a session advisory lock per BMC address, held on its own connection while the process talks to
 *   the BMC (withBmcLock). It dies with the connection, so a dead process never keeps a BMC locked.
 */

/** A server step leased to this process. `attempt` and `owner` together fence late writes of a former holder. */
export interface StepLease {
  id: number;
  jobId: number;
  name: string;
  attempt: number;
  owner: string;
  expiresAt: Date;
  /** The step was running under another (lapsed) owner: it is run again, with the same attempt number. */
  takenOver: boolean;
}

/** A timestamptz as epoch milliseconds (a float8, which node-postgres returns as a number; drizzle leaves raw timestamps as text). */
const epochMs = (col: SQL) => sql`(extract(epoch FROM ${col}) * 1000)::float8`;

const ms = (n: number) => sql`(${Math.trunc(n)}::int * interval '1 millisecond')`;

function positive(what: string, n: number, max = 86_400_000): number {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${what} must be an integer from 1 to ${max} (got ${n})`);
  return n;
}

/** A process's name in leases: printable, short (it is stored and shown in /healthz). */
/** This process's default name as a lease holder: host and pid, in the characters owners allow. */
export function processOwner(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 100) || "host"}:${process.pid}`;
}

export function checkOwner(owner: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(owner)) throw new Error(`lease owner ${JSON.stringify(owner.slice(0, 40))} must be 1-128 of A-Z a-z 0-9 . _ : @ -`);
  return owner;
}

/**
 * Lease up to `limit` server steps to `owner` for `leaseMs`: steps that are ready, and running steps whose lease
 * lapsed (their holder died or lost the database). Concurrent callers never get the same step: each row is locked
 * by the taker and skipped by the others. A ready step's attempt is counted; a taken-over step keeps its attempt.
 */
export async function claimSteps(db: PgDb, owner: string, opts: { limit: number; leaseMs: number }): Promise<StepLease[]> {
  checkOwner(owner);
  const limit = positive("limit", opts.limit, 10_000);
  const lease = ms(positive("leaseMs", opts.leaseMs));
  const res = await db.execute<{ id: number; job_id: number; name: string; attempt: number; lease_owner: string; expires_ms: number; taken_over: boolean }>(sql`
    WITH picked AS (
      SELECT id, state AS was FROM steps
      WHERE runner = 'server'
        AND (state = 'ready' OR (state = 'running' AND lease_owner IS NOT NULL AND lease_expires_at < clock_timestamp()))
      ORDER BY id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE steps AS s SET
      state = 'running',
      lease_owner = ${owner},
      lease_expires_at = clock_timestamp() + ${lease},
      attempt = CASE WHEN picked.was = 'ready' THEN s.attempt + 1 ELSE s.attempt END,
      started_at = CASE WHEN picked.was = 'ready' THEN clock_timestamp() ELSE s.started_at END,
      next_attempt_at = NULL
    FROM picked
    WHERE s.id = picked.id
    RETURNING s.id, s.job_id, s.name, s.attempt, s.lease_owner, ${epochMs(sql`s.lease_expires_at`)} AS expires_ms, picked.was = 'running' AS taken_over`);
  return res.rows
    .map((r) => ({ id: r.id, jobId: r.job_id, name: r.name, attempt: r.attempt, owner: r.lease_owner, expiresAt: new Date(r.expires_ms), takenOver: r.taken_over }))
    .sort((a, b) => a.id - b.id);
}

/** Extend this owner's leases on `stepIds` by `leaseMs`; returns the ids still held (the others were lost). */
export async function renewSteps(db: PgDb, owner: string, stepIds: number[], leaseMs: number): Promise<number[]> {
  checkOwner(owner);
  if (stepIds.length === 0) return [];
  const ids = stepIds.map((id) => positive("step id", id, 2 ** 31 - 1));
  const res = await db.execute<{ id: number }>(sql`
    UPDATE steps SET lease_expires_at = clock_timestamp() + ${ms(positive("leaseMs", leaseMs))}
    WHERE id = ANY(${sql.param(ids)}::int[]) AND state = 'running' AND lease_owner = ${owner} AND lease_expires_at >= clock_timestamp()
    RETURNING id`);
  return res.rows.map((r) => r.id).sort((a, b) => a - b);
}

/**
 * Record a leased step's outcome, only if the lease is still this one (same owner and attempt, still running):
 * a former holder that comes back after a takeover changes nothing. Returns whether it was recorded.
 * (The domain's full outcome handling, retries and job advance, stays in the orchestrator; this is its guard.)
 */
export async function finishStep(
  db: PgDb,
  lease: Pick<StepLease, "id" | "attempt" | "owner">,
  outcome: { state: "succeeded" | "failed"; result?: Record<string, unknown>; error?: string },
): Promise<boolean> {
  const res = await db.execute(sql`
    UPDATE steps SET state = ${outcome.state}, lease_owner = NULL, lease_expires_at = NULL, finished_at = clock_timestamp(),
      result = ${outcome.result === undefined ? null : JSON.stringify(outcome.result)}::jsonb, error = ${outcome.error ?? null}
    WHERE id = ${lease.id} AND attempt = ${lease.attempt} AND lease_owner = ${lease.owner} AND state = 'running'`);
  return res.rowCount === 1;
}

/** The state of a named lease after an attempt to take or renew it. */
export interface LeaseState {
  held: boolean;
  holder: string | null;
  epoch: number;
  expiresAt: Date | null;
}

/** Names: "netboot:<network>", "sweep:<machine id>"…; printable, no more than 200 characters. */
function checkName(name: string): string {
  if (!/^[A-Za-z0-9][\x21-\x7e]{0,199}$/.test(name)) throw new Error(`lease name ${JSON.stringify(name.slice(0, 40))} must be 1-200 printable ASCII characters without spaces`);
  return name;
}

/**
 * Take the lease `name` for `ttlMs`, or renew it when `holder` has it. Fails (held: false) while another holder's
 * lease runs. Atomic: of several processes trying at once on a free or lapsed lease, exactly one gets it.
 */
export async function acquireLease(db: PgDb, name: string, holder: string, ttlMs: number): Promise<LeaseState> {
  checkName(name);
  checkOwner(holder);
  const res = await db.execute<{ holder: string; epoch: number; expires_ms: number }>(sql`
    INSERT INTO leases (name, holder, epoch, expires_at) VALUES (${name}, ${holder}, 1, clock_timestamp() + ${ms(positive("ttlMs", ttlMs))})
    ON CONFLICT (name) DO UPDATE SET
      holder = excluded.holder,
      epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
      expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at < clock_timestamp()
    RETURNING holder, epoch, ${epochMs(sql`expires_at`)} AS expires_ms`);
  const won = res.rows[0];
  if (won) return { held: true, holder: won.holder, epoch: won.epoch, expiresAt: new Date(won.expires_ms) };
  return { ...(await readLease(db, name)), held: false };
}

export async function readLease(db: PgDb, name: string): Promise<LeaseState> {
  const res = await db.execute<{ holder: string; epoch: number; expires_ms: number; live: boolean }>(
    sql`SELECT holder, epoch, ${epochMs(sql`expires_at`)} AS expires_ms, expires_at >= clock_timestamp() AS live FROM leases WHERE name = ${checkName(name)}`,
  );
  const r = res.rows[0];
  return r ? { held: r.live, holder: r.holder, epoch: r.epoch, expiresAt: new Date(r.expires_ms) } : { held: false, holder: null, epoch: 0, expiresAt: null };
}

/** Give the lease up now (a clean stop): another process may take it at once. */
export async function releaseLease(db: PgDb, name: string, holder: string): Promise<boolean> {
  const res = await db.execute(sql`
    UPDATE leases SET expires_at = clock_timestamp() - interval '1 millisecond'
    WHERE name = ${checkName(name)} AND holder = ${checkOwner(holder)} AND expires_at >= clock_timestamp()`);
  return res.rowCount === 1;
}

export interface LeaderLeaseOptions {
  /** How long a lease runs without renewal: the longest a dead holder delays the takeover. */
  ttlMs: number;
  /** How often the holder renews (and a follower retries); well under ttlMs. */
  renewMs: number;
  onChange?: (leader: boolean, epoch: number) => void;
  onError?: (err: Error) => void;
}

/**
 * One leader among the processes for `name` (the netboot owner of a provisioning network: "netboot:<network>").
 * Each process runs one; `isLeader()` is true only while this process's lease surely runs by its own clock: the
 * lease is counted from before the request was sent, so a slow answer or a lost database ends leadership early
 * rather than late; onChange(false) fires when that time runs out, also while a renewal still hangs. When the
 * leader stops renewing, a follower takes over within ttlMs + renewMs.
 */
export class LeaderLease {
  private timer: NodeJS.Timeout | null = null;
  /** Fires when the lease runs out by this process's clock without a renewal (a renewal that hangs: onChange(false) then). */
  private expiry: NodeJS.Timeout | null = null;
  private validUntil = 0;
  private epoch = 0;
  private leader = false;
  private stopped = false;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly db: PgDb,
    readonly name: string,
    readonly holder: string,
    private readonly opts: LeaderLeaseOptions,
  ) {
    checkName(name);
    checkOwner(holder);
    if (!(opts.renewMs > 0 && opts.renewMs * 2 <= opts.ttlMs)) throw new Error("LeaderLease: renewMs must be positive and at most half of ttlMs");
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.opts.renewMs);
    void this.tick();
  }

  /**
   * Stop renewing (for good); with `release`, give the lease up at once (a clean shutdown) instead of letting it
   * lapse. A renewal in flight is waited for, so it cannot make a stopped process lead again.
   */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
    await this.inflight;
    const was = this.leader;
    this.setLeader(false);
    if (release && was) await releaseLease(this.db, this.name, this.holder).catch(() => false);
  }

  isLeader(): boolean {
    return this.leader && Date.now() < this.validUntil;
  }

  currentEpoch(): number {
    return this.epoch;
  }

  /** One renewal or takeover attempt (the timer's; tests call it directly). */
  async tick(): Promise<void> {
    if (this.inflight || this.stopped) return this.inflight ?? undefined;
    this.inflight = this.attempt().finally(() => (this.inflight = null));
    return this.inflight;
  }

  private async attempt(): Promise<void> {
    const sentAt = Date.now();
    try {
      const s = await acquireLease(this.db, this.name, this.holder, this.opts.ttlMs);
      if (s.held) {
        this.validUntil = sentAt + this.opts.ttlMs;
        this.epoch = s.epoch;
        this.armExpiry();
      }
      if (!this.stopped) this.setLeader(s.held && Date.now() < this.validUntil);
    } catch (err) {
      this.opts.onError?.(err as Error);
      if (!this.stopped) this.setLeader(this.isLeader());
    }
  }

  /** Step down by this process's clock when no renewal came in time, even while a renewal request still hangs. */
  private armExpiry(): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => {
      this.expiry = null;
      if (!this.stopped) this.setLeader(this.isLeader());
    }, Math.max(0, this.validUntil - Date.now()) + 1);
    this.expiry.unref?.();
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.opts.onChange?.(leader, this.epoch);
  }
}

/**
 * The BMCs (machine ids) this process sweeps in this power-sync interval: of the given machines, those whose sweep
 * lease ("sweep:<id>", intervalMs long) is free or lapsed, leased to `holder`. Across processes each BMC is
 * claimed by one of them per interval.
 */
export async function claimBmcSweeps(db: PgDb, holder: string, machineIds: number[], intervalMs: number): Promise<number[]> {
  checkOwner(holder);
  if (machineIds.length === 0) return [];
  const ids = machineIds.map((id) => positive("machine id", id, 2 ** 31 - 1));
  const res = await db.execute<{ name: string }>(sql`
    INSERT INTO leases (name, holder, epoch, expires_at)
    SELECT 'sweep:' || id, ${holder}, 1, clock_timestamp() + ${ms(positive("intervalMs", intervalMs))} FROM unnest(${sql.param(ids)}::int[]) AS id
    ON CONFLICT (name) DO UPDATE SET
      holder = excluded.holder,
      epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
      expires_at = excluded.expires_at
    WHERE leases.expires_at < clock_timestamp()
    RETURNING name`);
  return res.rows.map((r) => Number(r.name.slice("sweep:".length))).sort((a, b) => a - b);
}

/** Advisory lock namespace (first key of pg_advisory_lock(int, int)) of BMC exclusion: "BMC\0". */
export const BMC_LOCK_NS = 0x424d4300;

/**
 * Run `fn` while holding the cross-process lock of the BMC at `address:port`: no two processes (nor two calls in
 * one) talk to the same BMC at once. The lock is a session advisory lock on a connection of its own, held for the
 * duration of `fn`, so it is released when the process or its connection dies. If that connection is lost while
 * `fn` runs, exclusion is no longer guaranteed: `signal` aborts, and fn should stop talking to the BMC.
 * @throws Error when the lock is not had within `waitMs` (another process is talking to this BMC).
 */
export async function withBmcLock<T>(pool: pg.Pool, bmc: { address: string; port: number }, fn: (signal: AbortSignal) => Promise<T>, waitMs = 30_000): Promise<T> {
  const key = `${bmc.address}:${bmc.port}`;
  if (key.length > 300) throw new Error("BMC address too long for a lock key");
  const client = await pool.connect();
  const lost = new AbortController();
  let broken: Error | undefined;
  const onGone = (err?: Error) => {
    broken = err ?? new Error("connection ended");
    lost.abort(new Error(`lost the database connection holding the lock of BMC ${key}`));
  };
  client.on("error", onGone);
  client.on("end", onGone);
  try {
    // The wait limit is local to a transaction, so the pooled connection goes back with its own; the advisory lock
    // is the session's and outlives the COMMIT.
    await client.query("BEGIN");
    try {
      await client.query("SELECT set_config('lock_timeout', $1, true)", [`${positive("waitMs", waitMs)}ms`]);
      await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [BMC_LOCK_NS, key]);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      if ((err as { code?: string }).code === "55P03") throw new Error(`BMC ${key} is busy (another Rackhand process talks to it); waited ${waitMs} ms`);
      throw err;
    }
    try {
      return await fn(lost.signal);
    } finally {
      if (!broken) await client.query("SELECT pg_advisory_unlock($1, hashtext($2))", [BMC_LOCK_NS, key]).catch((e: Error) => (broken = e));
    }
  } finally {
    client.off("error", onGone);
    client.off("end", onGone);
    client.release(broken);
  }
}

/**
 * The cross-process exclusion of a BmcScheduler (server/oob/scheduler.ts `crossProcess`) over `pool`: its keys are
 * "address:port" (bmcKey), each call runs inside withBmcLock.
 */
export function bmcLockOn(pool: pg.Pool, waitMs?: number): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  return (key, fn) => {
    const i = key.lastIndexOf(":");
    const port = Number(key.slice(i + 1));
    if (i < 1 || !Number.isInteger(port)) throw new Error(`not a BMC key: ${JSON.stringify(key.slice(0, 80))}`);
    return withBmcLock(pool, { address: key.slice(0, i), port }, () => fn(), waitMs);
  };
}
