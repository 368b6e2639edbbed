import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Named leases between Rackhand processes sharing one PostgreSQL (server/db/pg/leases.ts): the netboot owner of a
 * provisioning network, a BMC's power sweep. `epoch` grows at every change of holder (a fencing token). A single
 * process on SQLite holds everything by itself and leaves this table empty.
 */
export const leases = sqliteTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  epoch: integer("epoch").notNull().default(0),
  expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
});
