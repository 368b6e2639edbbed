import { and, desc, eq, gte, lt, lte, type SQL } from "drizzle-orm";
import type { EventFilter } from "../../lib/schemas";
import type { EventDto } from "../../lib/live-events";
import { insertOne } from "../db/hot-insert";
import { escapeLike, likeCi } from "../db/sql";
import type { Store, StoreDb, StoreTx } from "../db/store";
import { events } from "../db/schema";

export interface NewEvent {
  actor: string;
  machineId?: number | null;
  kind: string;
  message: string;
  payload?: Record<string, unknown> | null;
}

/**
 * Record an event on the Store (either database); call with the transaction of the change it records. A NUL in its
 * text or payload is stored as U+2400 "␀" on both databases (PostgreSQL's text and jsonb cannot hold it), as log lines.
 */
export async function recordStoreEvent(store: Store, db: StoreDb | StoreTx, e: NewEvent): Promise<EventDto> {
  const [row] = await db
    .insert(store.t.events)
    .values({ ts: new Date(), actor: storedText(e.actor), machineId: e.machineId ?? null, kind: storedText(e.kind), message: storedText(e.message), payload: storedPayload(e.payload) })
    .returning();
  return toDto(row!);
}

/**
 * recordStoreEvent through one statement prepared once on SQLite (`insertOne`), for hot paths (single enrollment):
 * drizzle's insert builder and `returning()` cost more than the insert. Returns what recordStoreEvent returns: the
 * payload as read back (a JSON round trip), the time as stored (whole milliseconds).
 */
export async function recordEventHot(store: Store, db: StoreDb | StoreTx, e: NewEvent): Promise<EventDto> {
  const values = { ts: new Date(), actor: storedText(e.actor), machineId: e.machineId ?? null, kind: storedText(e.kind), message: storedText(e.message), payload: storedPayload(e.payload) };
  const { id } = (await insertOne(store, store.t.events, EVENT_FIELDS, ["id"])(db, values)) as { id: number };
  const payload = values.payload === null ? null : (JSON.parse(JSON.stringify(values.payload)) as Record<string, unknown>);
  return toDto({ ...values, id, payload });
}
const EVENT_FIELDS = ["ts", "actor", "machineId", "kind", "message", "payload"];

/** Text as events store it: a NUL becomes U+2400 "␀". */
export function storedText(s: string): string {
  return s.includes("\0") ? s.replaceAll("\0", "\u2400") : s;
}

function storedPayload(p: Record<string, unknown> | null | undefined): Record<string, unknown> | null {
  if (p == null) return null;
  return hasNul(p) ? (withoutNul(JSON.parse(JSON.stringify(p))) as Record<string, unknown>) : p;
}

/** Whether a NUL occurs in any string or key of a JSON-like value (a walk: no copy on the common path). */
function hasNul(v: unknown): boolean {
  if (typeof v === "string") return v.includes("\0");
  if (v === null || typeof v !== "object" || v instanceof Date) return false;
  if (Array.isArray(v)) return v.some(hasNul);
  for (const k in v) if (k.includes("\0") || hasNul((v as Record<string, unknown>)[k])) return true;
  return false;
}

function withoutNul(v: unknown): unknown {
  if (typeof v === "string") return storedText(v);
  if (Array.isArray(v)) return v.map(withoutNul);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [storedText(k), withoutNul(x)]));
  return v;
}

function toDto(row: typeof events.$inferSelect, machineName?: string | null): EventDto {
  return {
    id: row.id,
    ts: row.ts.getTime(),
    actor: row.actor,
    machineId: row.machineId,
    machineName,
    kind: row.kind,
    message: row.message,
    payload: row.payload ?? null,
  };
}

/** SQL conditions of an Events filter; every value is a bound parameter. */
async function eventConditions(store: Store, f: EventFilter): Promise<SQL[] | null> {
  const { events, machines } = store.t;
  const conds: SQL[] = [];
  if (f.machineId !== undefined) conds.push(eq(events.machineId, f.machineId));
  if (f.machine) {
    const [m] = await store.db.select({ id: machines.id }).from(machines).where(eq(machines.name, f.machine.toLowerCase())).limit(1);
    if (!m) return null;
    conds.push(eq(events.machineId, m.id));
  }
  if (f.kind) {
    // "job." means every job.* kind: a range on the (kind, id) index; "/" is the character after ".".
    if (f.kind.endsWith(".")) conds.push(and(gte(events.kind, f.kind), lt(events.kind, `${f.kind.slice(0, -1)}/`))!);
    else conds.push(eq(events.kind, f.kind));
  }
  if (f.actor) conds.push(eq(events.actor, f.actor));
  if (f.from !== undefined) conds.push(gte(events.ts, new Date(f.from)));
  if (f.to !== undefined) conds.push(lte(events.ts, new Date(f.to)));
  // Literal text (wildcards escaped), ASCII case ignored on both; a NUL means the "␀" it is stored as.
  if (f.q) conds.push(likeCi(store.dialect, events.message, `%${escapeLike(storedText(f.q))}%`));
  return conds;
}

/** Events newest first, filtered, paging backwards with `before` (keyset on id). */
export async function listEvents(store: Store, opts: EventFilter & { before?: number; limit: number }) {
  const { events, machines } = store.t;
  const conds = await eventConditions(store, opts);
  if (conds === null) return { items: [], nextBefore: null };
  if (opts.before !== undefined) conds.push(lt(events.id, opts.before));
  const rows = await store.db
    .select({ e: events, machineName: machines.name })
    .from(events)
    .leftJoin(machines, eq(machines.id, events.machineId))
    .where(conds.length ? and(...conds) : undefined)
    .orderBy(desc(events.id))
    .limit(opts.limit + 1);
  const more = rows.length > opts.limit;
  const items = rows.slice(0, opts.limit).map((r) => toDto(r.e, r.machineName));
  return { items, nextBefore: more ? items[items.length - 1]!.id : null };
}

/** The kinds and actors that occur, for the Events page's filter choices (index skip-scans, not table scans). */
export async function eventFacets(store: Store): Promise<{ kinds: string[]; actors: string[] }> {
  const { events } = store.t;
  const kinds = (await store.db.selectDistinct({ v: events.kind }).from(events).orderBy(events.kind).limit(500)).map((r) => r.v);
  const actors = (await store.db.selectDistinct({ v: events.actor }).from(events).orderBy(events.actor).limit(500)).map((r) => r.v);
  return { kinds, actors };
}
