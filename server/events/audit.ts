import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import type { EventDto } from "../../lib/live-events";
import type { Db } from "../db/client";
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

/** Events newest first, optionally for one machine, paging backwards with `before`. */
export function listEvents(db: Db, opts: { machineId?: number; before?: number; limit: number }) {
  const conds: SQL[] = [];
  if (opts.machineId !== undefined) conds.push(eq(events.machineId, opts.machineId));
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
