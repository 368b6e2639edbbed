import { integer, pgTable, text } from "drizzle-orm/pg-core";
import { ts } from "./columns";

export const leases = pgTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  epoch: integer("epoch").notNull().default(0),
  expiresAt: ts("expires_at").notNull(),
});
