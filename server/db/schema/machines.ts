import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { MachineState } from "../../../lib/lifecycle";
import type { BmcPrivilege, BootFirmware, FirmwareSetting, PowerState } from "../../../lib/schemas";
import { osProfiles } from "./os-profiles";
import { racks } from "./racks";
import { subnets } from "./subnets";

export const machines = sqliteTable(
  "machines",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    name: text("name").notNull().unique(),
    rackId: integer("rack_id").references(() => racks.id, { onDelete: "restrict" }),
    /** Lowest U the machine occupies (1 = bottom of the rack). */
    uPosition: integer("u_position"),
    uHeight: integer("u_height").notNull().default(1),
    state: text("state").$type<MachineState>().notNull().default("enrolled"),
    powerState: text("power_state").$type<PowerState>().notNull().default("unknown"),
    /** A power action asked for and not yet confirmed by the BMC: the state it leads to ("powering on…"). */
    powerPending: text("power_pending").$type<"on" | "off">(),
    maintenance: integer("maintenance", { mode: "boolean" }).notNull().default(false),
    maintenanceReason: text("maintenance_reason"),
    lastError: text("last_error"),
    osProfileId: integer("os_profile_id").references(() => osProfiles.id, { onDelete: "set null" }),
    /** Hardware inventory reported by the agent (CPU, memory, disks, NICs). */
    inventory: text("inventory", { mode: "json" }).$type<Record<string, unknown>>(),
    /** Operator's choice of boot firmware: auto follows what the machine's DHCP requests show (bootFirmware). */
    firmware: text("firmware").$type<FirmwareSetting>().notNull().default("auto"),
    /** Firmware and client architecture (DHCP option 93) of the machine's last network boot request. */
    bootFirmware: text("boot_firmware").$type<BootFirmware>(),
    bootArch: integer("boot_arch"),
    bootSeenAt: integer("boot_seen_at", { mode: "timestamp_ms" }),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [
    index("machines_state_name").on(t.state, t.name),
    index("machines_rack_u").on(t.rackId, t.uPosition),
    index("machines_power").on(t.powerState),
  ],
);
export type Machine = typeof machines.$inferSelect;

/**
 * Addressing of a NIC or link in the installed OS beyond `ip`/`prefix`/`gateway` (IPv4), validated on every read
 * by lib/net-model.ts (loadNetModel). address_mode null: legacy rows, static when `ip` is set, else DHCP;
 * with "dhcp" a NIC's `ip` is only its DHCP reservation. ipv6_mode null: none.
 */
function addressingColumns() {
  return {
    addressMode: text("address_mode"),
    ipv6Mode: text("ipv6_mode"),
    ip6: text("ip6"),
    prefix6: integer("prefix6"),
    gateway6: text("gateway6"),
    /** DNS servers of this interface (a JSON array of IPv4/IPv6 text, parsed and validated on read); null: the netboot settings' DNS servers. */
    dns: text("dns"),
    /** The subnets the IPv4 / IPv6 address of mode auto or static comes from (its row in ip_allocations). */
    subnetId: integer("subnet_id").references(() => subnets.id, { onDelete: "restrict" }),
    subnet6Id: integer("subnet6_id").references(() => subnets.id, { onDelete: "restrict" }),
  };
}

export const nics = sqliteTable(
  "nics",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    /** Canonical lower-case colon form, see lib/net.ts normalizeMac. */
    mac: text("mac").notNull().unique(),
    ip: text("ip").unique(),
    isBoot: integer("is_boot", { mode: "boolean" }).notNull().default(false),
    /** Interface name in the installed OS (e.g. eno1); static NIC config is rendered only when set with an IP. */
    ifname: text("ifname"),
    prefix: integer("prefix"),
    gateway: text("gateway"),
    mtu: integer("mtu"),
    ...addressingColumns(),
  },
  (t) => [
    index("nics_machine").on(t.machineId),
    // At most one boot NIC per machine.
    uniqueIndex("nics_one_boot").on(t.machineId).where(sql`${t.isBoot} = 1`),
  ],
);
export type Nic = typeof nics.$inferSelect;

/**
 * Logical interfaces built on NICs in the installed OS: bonds (members are interface names of this machine's
 * NICs) and VLANs (on a parent interface). Rendered into the static NIC configuration of each OS family.
 */
export const nicLinks = sqliteTable(
  "nic_links",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    ifname: text("ifname").notNull(),
    kind: text("kind").$type<"bond" | "vlan">().notNull(),
    members: text("members", { mode: "json" }).$type<string[]>(),
    bondMode: text("bond_mode"),
    parent: text("parent"),
    vlanId: integer("vlan_id"),
    ip: text("ip"),
    prefix: integer("prefix"),
    gateway: text("gateway"),
    mtu: integer("mtu"),
    ...addressingColumns(),
    /** Bonds: MII monitoring interval in ms (null: 100), LACP rate and transmit hash policy (null: kernel default). */
    miimon: integer("miimon"),
    lacpRate: text("lacp_rate"),
    xmitHashPolicy: text("xmit_hash_policy"),
  },
  (t) => [uniqueIndex("nic_links_machine_ifname").on(t.machineId, t.ifname)],
);
export type NicLink = typeof nicLinks.$inferSelect;

export const bmcs = sqliteTable(
  "bmcs",
  {
    machineId: integer("machine_id")
      .primaryKey()
      .references(() => machines.id, { onDelete: "cascade" }),
    driver: text("driver").notNull().default("ipmitool"),
    address: text("address").notNull(),
    port: integer("port").notNull().default(623),
    username: text("username").notNull(),
    /** AES-256-GCM, see server/auth/secrets.ts. Never leaves the server. */
    passwordEncrypted: text("password_encrypted").notNull(),
    lastSeen: integer("last_seen", { mode: "timestamp_ms" }),
    reachable: integer("reachable", { mode: "boolean" }),
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    /** IPMI privilege level asked for (`ipmitool -L`). */
    privilege: text("privilege").$type<BmcPrivilege>().notNull().default("ADMINISTRATOR"),
    /** RMCP+ cipher suite (`ipmitool -C`); 3 = HMAC-SHA1/AES-128, the one ipmi_sim and most BMCs speak. */
    cipherSuite: integer("cipher_suite").notNull().default(3),
    /** The last failure talking to this BMC (classified, never containing the password). */
    lastError: text("last_error"),
  },
  // Enrollment looks BMCs up by address (one machine per address:port; an address is not also a machine's IP).
  (t) => [index("bmcs_address").on(t.address, t.port)],
);
export type Bmc = typeof bmcs.$inferSelect;

/**
 * Addresses handed out from subnets: one row per address, UNIQUE (subnet, address), so the database itself refuses
 * a second holder. `sort_key` is the address as 32 hex digits (lib/subnets.ts addrKey) for ordered pages.
 * Deleting the machine (or the NIC/link) frees the address; a subnet with allocations cannot be deleted.
 */
export const ipAllocations = sqliteTable(
  "ip_allocations",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
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
    /** auto = allocated by Rackhand, static = pinned by an operator. */
    mode: text("mode").$type<"auto" | "static">().notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [
    uniqueIndex("ip_allocations_subnet_address").on(t.subnetId, t.address),
    index("ip_allocations_subnet_key").on(t.subnetId, t.sortKey),
    index("ip_allocations_machine").on(t.machineId),
  ],
);
export type IpAllocation = typeof ipAllocations.$inferSelect;
