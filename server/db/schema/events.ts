import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { machines } from "./machines";

/** Audit and domain events. Ids are monotonic: clients backfill "since id" and dedupe. */
export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts", { mode: "timestamp_ms" }).notNull(),
    /** "user:<name>", "system" or "agent". */
    actor: text("actor").notNull(),
    machineId: integer("machine_id").references(() => machines.id, { onDelete: "set null" }),
    kind: text("kind").notNull(),
    message: text("message").notNull(),
    payload: text("payload", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (t) => [
    index("events_machine").on(t.machineId, t.id),
    // The Events page's filters: each walks its index newest first (keyset paging on id).
    index("events_kind").on(t.kind, t.id),
    index("events_actor").on(t.actor, t.id),
    index("events_ts").on(t.ts),
  ],
);
export type EventRow = typeof events.$inferSelect;
