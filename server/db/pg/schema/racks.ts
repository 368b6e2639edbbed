import { integer, pgTable, text } from "drizzle-orm/pg-core";
import { id, ts } from "./columns";

export const racks = pgTable("racks", {
  id: id(),
  name: text("name").notNull().unique(),
  site: text("site"),
  row: text("row"),
  heightU: integer("height_u").notNull().default(42),
  createdAt: ts("created_at").notNull(),
  updatedAt: ts("updated_at").notNull(),
});
