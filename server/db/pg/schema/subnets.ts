import { sql } from "drizzle-orm";
import { boolean, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { id, ts } from "./columns";

/** See server/db/schema/subnets.ts. */
export const subnets = pgTable(
  "subnets",
  {
    id: id(),
    name: text("name").notNull().unique(),
    cidr: text("cidr").notNull().unique(),
    family: integer("family").$type<4 | 6>().notNull(),
    gateway: text("gateway"),
    dns: jsonb("dns").$type<string[]>().notNull().default(sql`'[]'`),
    vlanId: integer("vlan_id"),
    reserved: jsonb("reserved").$type<{ start: string; end: string }[]>().notNull().default(sql`'[]'`),
    dynamicStart: text("dynamic_start"),
    dynamicEnd: text("dynamic_end"),
    provisioning: boolean("provisioning").notNull().default(false),
    createdAt: ts("created_at").notNull(),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [uniqueIndex("subnets_one_provisioning").on(t.provisioning).where(sql`${t.provisioning} = true`)],
);
