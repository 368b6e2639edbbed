import { sql } from "drizzle-orm";
import { bigint, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { describe, expect, expectTypeOf, it } from "vitest";
import * as sqlite from "../schema";
import { schemaDiff } from "./parity";
import * as pg from "./schema";
import { id, ts } from "./schema/columns";

/**
 * Row types of every table a schema module exports: the selected row, and the inserted one with every field
 * required (which fields may be left out follows from defaults and nullability, compared by schemaDiff; SQLite also
 * lets an integer primary key without autoincrement, bmcs.machine_id, be left out, where PostgreSQL needs it).
 */
type Rows<S> = { [K in keyof S]: S[K] extends { $inferSelect: infer R; $inferInsert: infer I } ? { select: R; insert: Required<I> } : never };

describe("the PostgreSQL schema is the SQLite schema's twin", () => {
  it("same tables, columns (kind, nullability, defaults, keys), indexes and foreign keys", () => {
    expect(schemaDiff(sqlite, pg)).toEqual([]);
  });

  it("same TypeScript row types, so domain code reads and writes both alike (checked by tsc)", () => {
    expectTypeOf<Rows<typeof pg>>().toEqualTypeOf<Rows<typeof sqlite>>();
  });
});

describe("schemaDiff finds each kind of difference", () => {
  const base = (cols: Record<string, unknown> = {}) => ({
    id: id(),
    name: text("name").notNull().unique(),
    site: text("site"),
    row: text("row"),
    heightU: integer("height_u").notNull().default(42),
    createdAt: ts("created_at").notNull(),
    updatedAt: ts("updated_at").notNull(),
    ...cols,
  });
  const withRacks = (racks: unknown) => ({ ...pg, racks });
  const diff = (racks: unknown) => schemaDiff(sqlite, withRacks(racks));

  it("the unchanged twin passes (the mutations below are what fails)", () => {
    expect(diff(pgTable("racks", base()))).toEqual([]);
  });
  it.each([
    ["a missing column", () => pgTable("racks", Object.fromEntries(Object.entries(base()).filter(([k]) => k !== "row")) as ReturnType<typeof base>), /racks.columns row: SQLite only/],
    ["an extra column", () => pgTable("racks", base({ extra: text("extra") })), /racks.columns extra: PostgreSQL only/],
    ["nullability", () => pgTable("racks", base({ site: text("site").notNull() })), /racks.columns site/],
    ["a default", () => pgTable("racks", base({ heightU: integer("height_u").notNull().default(48) })), /racks.columns height_u/],
    ["a type", () => pgTable("racks", base({ heightU: text("height_u").notNull().default("42") })), /racks.columns height_u/],
    ["a timestamp without time zone", () => pgTable("racks", base({ createdAt: timestamp("created_at", { precision: 3 }).notNull() })), /created_at/],
    ["a boolean for an integer", () => pgTable("racks", base({ heightU: boolean("height_u").notNull() })), /height_u/],
    ["jsonb for text", () => pgTable("racks", base({ site: jsonb("site") })), /racks.columns site/],
    ["a lost identity", () => pgTable("racks", base({ id: integer("id").primaryKey() })), /racks.columns id/],
    ["a lost unique", () => pgTable("racks", base({ name: text("name").notNull() })), /racks.columns name/],
    ["an extra index", () => pgTable("racks", base(), (t) => [index("racks_site").on(t.site)]), /racks.indexes racks_site: PostgreSQL only/],
    ["an extra foreign key", () => pgTable("racks", base({ site: integer("site").references(() => pg.machines.id) })), /racks.foreignKeys|racks.columns site/],
    ["a missing table", () => undefined, /table racks: in the SQLite schema only/],
  ])("%s", (_what, make, expected) => {
    const found = diff(make());
    expect(found.join("\n")).toMatch(expected);
  });

  it("an index's columns, uniqueness and partial condition; a foreign key's action", () => {
    const jobsLike = (where: string, unique: boolean, onDelete: "cascade" | "set null") =>
      pgTable(
        "nics",
        {
          id: id(),
          machineId: integer("machine_id")
            .notNull()
            .references(() => pg.machines.id, { onDelete }),
          mac: text("mac").notNull().unique(),
          ip: text("ip").unique(),
          isBoot: boolean("is_boot").notNull().default(false),
          ifname: text("ifname"),
          prefix: integer("prefix"),
          gateway: text("gateway"),
          mtu: integer("mtu"),
          addressMode: text("address_mode"),
          ipv6Mode: text("ipv6_mode"),
          ip6: text("ip6"),
          prefix6: integer("prefix6"),
          gateway6: text("gateway6"),
          dns: text("dns"),
          subnetId: integer("subnet_id").references(() => pg.subnets.id, { onDelete: "restrict" }),
          subnet6Id: integer("subnet6_id").references(() => pg.subnets.id, { onDelete: "restrict" }),
        },
        (t) => [index("nics_machine").on(t.machineId), (unique ? uniqueIndex("nics_one_boot") : index("nics_one_boot")).on(t.machineId).where(sql.raw(where))],
      );
    expect(schemaDiff(sqlite, { ...pg, nics: jobsLike("is_boot = true", true, "cascade") })).toEqual([]);
    expect(schemaDiff(sqlite, { ...pg, nics: jobsLike("is_boot = false", true, "cascade") }).join()).toMatch(/nics_one_boot/);
    expect(schemaDiff(sqlite, { ...pg, nics: jobsLike("is_boot = true", false, "cascade") }).join()).toMatch(/nics_one_boot/);
    expect(schemaDiff(sqlite, { ...pg, nics: jobsLike("is_boot = true", true, "set null") }).join()).toMatch(/nics.foreignKeys/);
  });

  it("a bigint id stands for SQLite's 64-bit integer", () => {
    const r = pgTable("racks", base({ id: bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity() }));
    expect(diff(r)).toEqual([]);
  });
});
