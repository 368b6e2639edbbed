import { and, desc, eq, gte, lt, lte, sql, type SQL } from "drizzle-orm";
import type { EventFilter } from "../../lib/schemas";
import type { EventDto } from "../../lib/live-events";
import type { Db } from "../db/client";
import { insertRow } from "../db/prepared";
import type { Store, StoreDb, StoreTx } from "../db/store";
import { events, machines } from "../db/schema";

export interface NewEvent {
  actor: string;
  machineId?: number | null;
  kind: string;
  message: string;
  payload?: Record<string, unknown> | null;
}

/** Insert an event row; call inside the transaction of the change it records. */
export function recordEvent(db: Pick<Db, "insert">, e: NewEvent): EventDto {
  const row = db
    .insert(events)
    .values({
      ts: new Date(),
      actor: e.actor,
      machineId: e.machineId ?? null,
      kind: e.kind,
      message: e.message,
      payload: e.payload ?? null,
    })
    .returning()
    .get();
  return toDto(row);
}

/**
 * recordEvent() through a prepared single-row insert (server/db/prepared.ts) on `db`'s connection, for hot paths
 * (single enrollment): drizzle's insert builder and `returning()` cost more than the insert. Call inside the open
 * transaction of the change (better-sqlite3 runs it on that connection). Returns what recordEvent returns: the
 * payload as read back (a JSON round trip), the time as stored (whole milliseconds).
 */
export function recordEventRow(db: Db, e: NewEvent): EventDto {
  const values = { ts: new Date(), actor: e.actor, machineId: e.machineId ?? null, kind: e.kind, message: e.message, payload: e.payload ?? null };
  const id = insertRow(db, events, EVENT_FIELDS)(values);
  const payload = values.payload === null ? null : (JSON.parse(JSON.stringify(values.payload)) as Record<string, unknown>);
  return toDto({ ...values, id, payload });
}
const EVENT_FIELDS = ["ts", "actor", "machineId", "kind", "message", "payload"];

/** `recordEvent` on the Store (either database); call with the transaction of the change it records. */
export async function recordStoreEvent(store: Store, db: StoreDb | StoreTx, e: NewEvent): Promise<EventDto> {
  const [row] = await db
    .insert(store.t.events)
    .values({ ts: new Date(), actor: e.actor, machineId: e.machineId ?? null, kind: e.kind, message: e.message, payload: e.payload ?? null })
    .returning();
  return toDto(row!);
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

/** Escape LIKE wildcards so a search means the literal text. */
function likeText(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** SQL conditions of an Events filter; every value is a bound parameter. */
function eventConditions(db: Db, f: EventFilter): SQL[] | null {
  const conds: SQL[] = [];
  if (f.machineId !== undefined) conds.push(eq(events.machineId, f.machineId));
  if (f.machine) {
    const m = db.select({ id: machines.id }).from(machines).where(eq(machines.name, f.machine.toLowerCase())).get();
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
  if (f.q) conds.push(sql`${events.message} LIKE ${likeText(f.q)} ESCAPE '\\'`);
  return conds;
}

/** Events newest first, filtered, paging backwards with `before` (keyset on id). */
export function listEvents(db: Db, opts: EventFilter & { before?: number; limit: number }) {
  const conds = eventConditions(db, opts);
  if (conds === null) return { items: [], nextBefore: null };
  if (opts.before !== undefined) conds.push(lt(events.id, opts.before));
  const rows = db
    .select({ e: events, machineName: machines.name })
    .from(events)
    .leftJoin(machines, eq(machines.id, events.machineId))
    .where(conds.length ? and(...conds) : undefined)
    .orderBy(desc(events.id))
    .limit(opts.limit + 1)
    .all();
  const more = rows.length > opts.limit;
  const items = rows.slice(0, opts.limit).map((r) => toDto(r.e, r.machineName));
  return { items, nextBefore: more ? items[items.length - 1]!.id : null };
}

/** The kinds and actors that occur, for the Events page's filter choices (index skip-scans, not table scans). */
export function eventFacets(db: Db): { kinds: string[]; actors: string[] } {
  const kinds = db.selectDistinct({ v: events.kind }).from(events).orderBy(events.kind).limit(500).all().map((r) => r.v);
  const actors = db.selectDistinct({ v: events.actor }).from(events).orderBy(events.actor).limit(500).all().map((r) => r.v);
  return { kinds, actors };
}
