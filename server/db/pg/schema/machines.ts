import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import type { MachineState } from "../../../../lib/lifecycle";
import type { BmcPrivilege, BootFirmware, FirmwareSetting, PowerState } from "../../../../lib/schemas";
import { id, ts } from "./columns";
import { osProfiles } from "./os-profiles";
import { racks } from "./racks";
import { subnets } from "./subnets";

export const machines = pgTable(
  "machines",
  {
    id: id(),
    name: text("name").notNull().unique(),
    rackId: integer("rack_id").references(() => racks.id, { onDelete: "restrict" }),
    uPosition: integer("u_position"),
    uHeight: integer("u_height").notNull().default(1),
    state: text("state").$type<MachineState>().notNull().default("enrolled"),
    powerState: text("power_state").$type<PowerState>().notNull().default("unknown"),
    powerPending: text("power_pending").$type<"on" | "off">(),
    maintenance: boolean("maintenance").notNull().default(false),
    maintenanceReason: text("maintenance_reason"),
    lastError: text("last_error"),
    osProfileId: integer("os_profile_id").references(() => osProfiles.id, { onDelete: "set null" }),
    inventory: jsonb("inventory").$type<Record<string, unknown>>(),
    firmware: text("firmware").$type<FirmwareSetting>().notNull().default("auto"),
    bootFirmware: text("boot_firmware").$type<BootFirmware>(),
    bootArch: integer("boot_arch"),
    bootSeenAt: ts("boot_seen_at"),
    createdAt: ts("created_at").notNull(),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [
    // Names byte-wise (COLLATE "C"), as the machine list orders them (server/machines/queries.ts) and as SQLite's
    // BINARY default does, so the list's filtered name order is an index scan whatever the database's collation.
    index("machines_state_name").on(t.state, sql`${t.name} COLLATE "C"`),
    index("machines_rack_u").on(t.rackId, t.uPosition),
    index("machines_power").on(t.powerState),
  ],
);

/** See server/db/schema/machines.ts addressingColumns. */
function addressingColumns() {
  return {
    addressMode: text("address_mode"),
    ipv6Mode: text("ipv6_mode"),
    ip6: text("ip6"),
    prefix6: integer("prefix6"),
    gateway6: text("gateway6"),
    dns: text("dns"),
    subnetId: integer("subnet_id").references(() => subnets.id, { onDelete: "restrict" }),
    subnet6Id: integer("subnet6_id").references(() => subnets.id, { onDelete: "restrict" }),
  };
}

export const nics = pgTable(
  "nics",
  {
    id: id(),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    mac: text("mac").notNull().unique(),
    ip: text("ip").unique(),
    isBoot: boolean("is_boot").notNull().default(false),
    ifname: text("ifname"),
    prefix: integer("prefix"),
    gateway: text("gateway"),
    mtu: integer("mtu"),
    ...addressingColumns(),
  },
  (t) => [index("nics_machine").on(t.machineId), uniqueIndex("nics_one_boot").on(t.machineId).where(sql`${t.isBoot} = true`)],
);

export const nicLinks = pgTable(
  "nic_links",
  {
    id: id(),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    ifname: text("ifname").notNull(),
    kind: text("kind").$type<"bond" | "vlan">().notNull(),
    members: jsonb("members").$type<string[]>(),
    bondMode: text("bond_mode"),
    parent: text("parent"),
    vlanId: integer("vlan_id"),
    ip: text("ip"),
    prefix: integer("prefix"),
    gateway: text("gateway"),
    mtu: integer("mtu"),
    ...addressingColumns(),
    miimon: integer("miimon"),
    lacpRate: text("lacp_rate"),
    xmitHashPolicy: text("xmit_hash_policy"),
  },
  (t) => [uniqueIndex("nic_links_machine_ifname").on(t.machineId, t.ifname)],
);

export const bmcs = pgTable(
  "bmcs",
  {
    machineId: integer("machine_id")
      .primaryKey()
      .references(() => machines.id, { onDelete: "cascade" }),
    driver: text("driver").notNull().default("ipmitool"),
    address: text("address").notNull(),
    port: integer("port").notNull().default(623),
    username: text("username").notNull(),
    passwordEncrypted: text("password_encrypted").notNull(),
    lastSeen: ts("last_seen"),
    reachable: boolean("reachable"),
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    privilege: text("privilege").$type<BmcPrivilege>().notNull().default("ADMINISTRATOR"),
    cipherSuite: integer("cipher_suite").notNull().default(3),
    lastError: text("last_error"),
  },
  (t) => [index("bmcs_address").on(t.address, t.port)],
);

/** See server/db/schema/machines.ts ipAllocations. */
export const ipAllocations = pgTable(
  "ip_allocations",
  {
    id: id(),
    subnetId: integer("subnet_id")
      .notNull()
      .references(() => subnets.id, { onDelete: "restrict" }),
    address: text("address").notNull(),
    sortKey: text("sort_key").notNull(),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    nicId: integer("nic_id").references(() => nics.id, { onDelete: "cascade" }),
    linkId: integer("link_id").references(() => nicLinks.id, { onDelete: "cascade" }),
    mode: text("mode").$type<"auto" | "static">().notNull(),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("ip_allocations_subnet_address").on(t.subnetId, t.address),
    index("ip_allocations_subnet_key").on(t.subnetId, t.sortKey),
    index("ip_allocations_machine").on(t.machineId),
  ],
);
