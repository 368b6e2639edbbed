import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const racks = sqliteTable("racks", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  site: text("site"),
  row: text("row"),
  heightU: integer("height_u").notNull().default(42),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});
export type Rack = typeof racks.$inferSelect;
