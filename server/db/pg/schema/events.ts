import { index, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { bigId, ts } from "./columns";
import { machines } from "./machines";

export const events = pgTable(
  "events",
  {
    id: bigId(),
    ts: ts("ts").notNull(),
    actor: text("actor").notNull(),
    machineId: integer("machine_id").references(() => machines.id, { onDelete: "set null" }),
    kind: text("kind").notNull(),
    message: text("message").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>(),
  },
  (t) => [
    index("events_machine").on(t.machineId, t.id),
    index("events_kind").on(t.kind, t.id),
    index("events_actor").on(t.actor, t.id),
    index("events_ts").on(t.ts),
  ],
);
