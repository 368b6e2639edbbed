import { sql } from "drizzle-orm";
import { integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * Networks addresses are allocated from (issue 14; lib/subnets.ts validates every field). Addresses are canonical
 * text (lib/subnets.ts formatAddr); ranges are JSON arrays of { start, end }. At most one subnet is the provisioning
 * subnet: its dynamic range is dnsmasq's DHCP range (the server's own address stays in the netboot settings).
 * Allocations are in `ip_allocations` (machines.ts).
 */
export const subnets = sqliteTable(
  "subnets",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    name: text("name").notNull().unique(),
    /** Canonical network/prefix, e.g. 10.0.0.0/24 or 2001:db8::/64. */
    cidr: text("cidr").notNull().unique(),
    family: integer("family").$type<4 | 6>().notNull(),
    gateway: text("gateway"),
    dns: text("dns", { mode: "json" }).$type<string[]>().notNull().default(sql`'[]'`),
    vlanId: integer("vlan_id"),
    reserved: text("reserved", { mode: "json" }).$type<{ start: string; end: string }[]>().notNull().default(sql`'[]'`),
    dynamicStart: text("dynamic_start"),
    dynamicEnd: text("dynamic_end"),
    provisioning: integer("provisioning", { mode: "boolean" }).notNull().default(false),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [uniqueIndex("subnets_one_provisioning").on(t.provisioning).where(sql`${t.provisioning} = 1`)],
);
export type Subnet = typeof subnets.$inferSelect;
