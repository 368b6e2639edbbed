/**
 * Boot-entry requests from the processes that do not own the netboot tree (PostgreSQL, several processes): the
 * orchestrator's set_boot_target step may run on any process (step leases spread server steps), but only the
 * netboot leader writes the tree (service.ts). A follower records the request in the database and waits until the
 * leader confirms a reconcile that read the database after it.
 *
 * One row per provisioning network in `settings`, key `netboot.tree:<network>`, value
 * `{ requested, applied, pending: { "<machine id>": <request no> }, failed?: { upTo, message } }`:
 * - a follower's request bumps `requested` and names its machine in `pending` (one upsert; request no = the new
 *   `requested`);
 * - the leader reads `requested` and `pending` *before* it reads the machines, reconciles those machines with
 *   whatever else is dirty, and then sets `applied` to what it read and drops the pending entries it covered — only
 *   while it still holds the lease with the same epoch (a deposed leader confirms nothing);
 * - a failed reconcile records `failed` (the requests up to it fail at once with the leader's error; set_boot_target
 *   fails transiently and is retried), and the pending entries stay for the next attempt;
 * - a follower's request is done when `applied` reaches its number. The leader's `netboot.applied` bus event wakes the
 *   waiters; they also read the row every `pollMs`, since the bus bridge may drop events.
 *
 * Every new leader starts with a full reconcile and confirms everything requested before it, so a request made
 * while nobody led is served by the next leader (or times out and is retried).
 */
import { sql } from "drizzle-orm";
import type { PgDb } from "../db/pg/client";
import { storedText } from "../events/audit";

export interface TreeRequestState {
  requested: number;
  applied: number;
  /** Machine ids with a request not yet confirmed, and the highest request number of each. */
  pending: Map<number, number>;
  failed: { upTo: number; message: string } | null;
}

/** The settings key of a network's request row (the network name as checked by the lease name). */
export function requestKey(network: string): string {
  return `netboot.tree:${network}`;
}

function num(v: unknown): number {
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

function parseState(value: unknown): TreeRequestState {
  const v = (value ?? {}) as { requested?: unknown; applied?: unknown; pending?: Record<string, unknown>; failed?: { upTo?: unknown; message?: unknown } | null };
  const pending = new Map<number, number>();
  for (const [k, r] of Object.entries(v.pending ?? {})) {
    const id = Number(k);
    if (Number.isInteger(id) && id > 0) pending.set(id, num(r));
  }
  const failed = v.failed && typeof v.failed === "object" ? { upTo: num(v.failed.upTo), message: typeof v.failed.message === "string" ? v.failed.message : "the netboot leader could not write the tree" } : null;
  return { requested: num(v.requested), applied: num(v.applied), pending, failed };
}

/** Record a request for `machineId`'s boot entries; returns its number. */
export async function requestApply(db: PgDb, network: string, machineId: number): Promise<number> {
  if (!Number.isInteger(machineId) || machineId < 1 || machineId > 2 ** 31 - 1) throw new Error(`not a machine id: ${machineId}`);
  const res = await db.execute<{ r: string }>(sql`
    INSERT INTO settings (key, value, updated_at)
    VALUES (${requestKey(network)}, jsonb_build_object('requested', 1, 'applied', 0, 'pending', jsonb_build_object(${String(machineId)}::text, 1)), clock_timestamp())
    ON CONFLICT (key) DO UPDATE SET
      value = jsonb_set(
        jsonb_set(settings.value, '{requested}', to_jsonb(coalesce((settings.value->>'requested')::bigint, 0) + 1)),
        '{pending}',
        coalesce(settings.value->'pending', '{}'::jsonb) || jsonb_build_object(${String(machineId)}::text, coalesce((settings.value->>'requested')::bigint, 0) + 1)
      ),
      updated_at = clock_timestamp()
    RETURNING (value->>'requested')::bigint AS r`);
  return num(res.rows[0]?.r);
}

export async function readRequests(db: PgDb, network: string): Promise<TreeRequestState> {
  const res = await db.execute<{ value: unknown }>(sql`SELECT value FROM settings WHERE key = ${requestKey(network)}`);
  return parseState(res.rows[0]?.value);
}

/** The lease a confirmation is fenced by: written only while `holder` holds `name` with `epoch`. */
export interface LeaseFence {
  name: string;
  holder: string;
  epoch: number;
}

const FENCE = (f: LeaseFence) =>
  sql`EXISTS (SELECT 1 FROM leases WHERE name = ${f.name} AND holder = ${f.holder} AND epoch = ${f.epoch} AND expires_at >= clock_timestamp())`;

/**
 * The leader wrote the tree from a read made after requests 1..upTo: they are done. Returns false when the fence
 * failed (this process no longer leads with that epoch), and nothing was confirmed.
 */
export async function confirmApplied(db: PgDb, network: string, fence: LeaseFence, upTo: number): Promise<boolean> {
  const res = await db.execute(sql`
    UPDATE settings SET
      value = jsonb_set(
        jsonb_set(value, '{applied}', to_jsonb(GREATEST(coalesce((value->>'applied')::bigint, 0), ${upTo}::bigint))),
        '{pending}',
        (SELECT coalesce(jsonb_object_agg(p.k, p.v), '{}'::jsonb) FROM jsonb_each(coalesce(value->'pending', '{}'::jsonb)) AS p(k, v) WHERE (p.v::text)::bigint > ${upTo}::bigint)
      ) - 'failed',
      updated_at = clock_timestamp()
    WHERE key = ${requestKey(network)} AND ${FENCE(fence)}`);
  return res.rowCount === 1;
}

/** The leader could not write the tree for requests up to `upTo`: they fail now with `message` (kept short). */
export async function recordFailure(db: PgDb, network: string, fence: LeaseFence, upTo: number, message: string): Promise<boolean> {
  const text = storedText(message).slice(0, 500);
  const res = await db.execute(sql`
    UPDATE settings SET value = jsonb_set(value, '{failed}', jsonb_build_object('upTo', ${upTo}::bigint, 'message', ${text}::text)), updated_at = clock_timestamp()
    WHERE key = ${requestKey(network)} AND ${FENCE(fence)}`);
  return res.rowCount === 1;
}

/** How a follower's request ended. */
export type RequestOutcome = { ok: true } | { ok: false; message: string };

/** The outcome of request `r` in `s`, or null while it is still pending. */
export function outcomeOf(s: TreeRequestState, r: number): RequestOutcome | null {
  if (s.applied >= r) return { ok: true };
  if (s.failed && s.failed.upTo >= r) return { ok: false, message: s.failed.message };
  return null;
}
