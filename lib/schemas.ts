/** zod schemas for every input that crosses a boundary (tRPC, CSV, forms). Isomorphic. */
import { z } from "zod";
import { MACHINE_STATES, OPERATOR_ACTIONS } from "./lifecycle";
import { bmcAddressProblem, ipmiPasswordProblem, ipmiUsernameProblem } from "./bmc-address";
import { ADDRESS_MODES, machineIfnameSchema } from "./net-model";
import { ipv4, prefixSchema } from "./netboot";
import { dnsmasqNameProblem, isHostname, isIPv4, normalizeMac } from "./net";

export const POWER_STATES = ["on", "off", "unknown"] as const;
export type PowerState = (typeof POWER_STATES)[number];
export const ROLES = ["admin", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];
export const BMC_DRIVERS = ["ipmitool", "fake"] as const;
export const BMC_PRIVILEGES = ["USER", "OPERATOR", "ADMINISTRATOR"] as const;
export type BmcPrivilege = (typeof BMC_PRIVILEGES)[number];

/** A MAC in any usual spelling, output in canonical `aa:bb:cc:dd:ee:ff` form. Multicast/zero MACs are refused. */
export const macSchema = z.string().transform((value, ctx) => {
  const mac = normalizeMac(value);
  if (!mac) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a MAC address (e.g. 52:54:00:12:34:56)` });
    return z.NEVER;
  }
  if (mac === "00:00:00:00:00:00" || parseInt(mac.slice(0, 2), 16) & 1) {
    ctx.addIssue({ code: "custom", message: `${mac} is a multicast or zero MAC, not a NIC's address` });
    return z.NEVER;
  }
  return mac;
});

export const ipv4Schema = z
  .string()
  .trim()
  .refine(isIPv4, { error: (iss) => `"${String(iss.input)}" is not an IPv4 address (e.g. 10.0.0.21)` });

/**
 * Machine names are RFC 1123 host names, stored lower-case, that dnsmasq cannot read as anything else in a
 * dhcp-host line (no "ignore", "infinite", lease times like 12h or all-digit names).
 */
export const hostnameSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(isHostname, {
    error: (iss) => `"${String(iss.input)}" is not a valid host name (letters, digits and hyphens; dot-separated labels of at most 63)`,
  })
  .superRefine((name, ctx) => {
    const problem = dnsmasqNameProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: `${problem}: not usable as a machine name` });
  });

/** Names that may later become path components: conservative. */
export const rackNameSchema = z
  .string()
  .trim()
  .min(1, "Name is required")
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "Use letters, digits, '.', '_' and '-' (start with a letter or digit)");

const optionalText = (max: number) =>
  z
    .string()
    .trim()
    .max(max)
    .transform((s) => (s === "" ? null : s))
    .nullish();

const rackHeightSchema = z.number().int().min(1, "At least 1U").max(60, "At most 60U");
const rackFields = { name: rackNameSchema, site: optionalText(64), row: optionalText(32), heightU: rackHeightSchema };

export const rackCreateSchema = z.object({ ...rackFields, heightU: rackHeightSchema.default(42) });
// Built from the fields without the default: `.partial()` keeps a default, so an update that omits heightU
// would otherwise resize the rack to 42U.
export const rackUpdateSchema = z.object(rackFields).partial().extend({ id: z.number().int().positive() });

/** A superRefine that adds `problem(value)` as the issue, if any. */
const refineWith = (problem: (v: string) => string | null) => (v: string, ctx: z.RefinementCtx) => {
  const p = problem(v);
  if (p) ctx.addIssue({ code: "custom", message: p });
};

export const bmcInputSchema = z.object({
  driver: z.enum(BMC_DRIVERS).default("ipmitool"),
  address: z
    .string()
    .trim()
    .toLowerCase()
    .min(1, "BMC address is required")
    .superRefine((v, ctx) => {
      const problem = bmcAddressProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  port: z.number().int().min(1).max(65535).default(623),
  username: z.string().trim().min(1, "BMC user is required").superRefine(refineWith(ipmiUsernameProblem)),
  password: z.string().min(1, "BMC password is required").superRefine(refineWith(ipmiPasswordProblem)),
  privilege: z.enum(BMC_PRIVILEGES).default("ADMINISTRATOR"),
  /** RMCP+ cipher suite; 3 (HMAC-SHA1, AES-128) by default: without it ipmitool probes and ipmi_sim stalls ~10 s. */
  cipherSuite: z.number().int().min(0).max(17).default(3),
});

/**
 * Static network configuration of the boot NIC in the installed system (image deploys render it for the OS family
 * and configure_network writes it). Without an interface name the image keeps its own configuration (DHCP).
 */
export const bootNicNetworkSchema = z.object({
  ifname: machineIfnameSchema.nullish().or(z.literal("").transform(() => null)),
  prefix: prefixSchema.nullish(),
  gateway: ipv4.nullish().or(z.literal("").transform(() => null)),
  /** The subnet the boot NIC's address comes from (issue 14); with a subnet, address mode defaults to auto. */
  subnetId: z.number().int().positive().nullish(),
  /** auto: allocated from the subnet; static: `ip` pinned (checked against the subnet); dhcp; none. */
  addressMode: z.enum(ADDRESS_MODES, { error: `Address mode is one of ${ADDRESS_MODES.join(", ")}` }).nullish(),
});

/** Per-machine boot firmware setting: auto = what its last DHCP request showed. */
export const FIRMWARE_SETTINGS = ["auto", "bios", "uefi"] as const;
export type FirmwareSetting = (typeof FIRMWARE_SETTINGS)[number];
export type BootFirmware = "bios" | "uefi";
export const FIRMWARE_LABELS: Record<FirmwareSetting, string> = { auto: "Auto (learned)", bios: "BIOS", uefi: "UEFI" };
/** "UEFI", "BIOS (set)", "—": the firmware a machine boots with, for tables and the rack view. */
export function firmwareLabel(setting: FirmwareSetting | null | undefined, learned: BootFirmware | null | undefined): string {
  const f = effectiveFirmware(setting, learned);
  if (!f) return "—";
  return `${f === "uefi" ? "UEFI" : "BIOS"}${setting && setting !== "auto" ? " (set)" : ""}`;
}
/** DHCP option 93 values Rackhand answers. */
export const ARCH_LABELS: Record<number, string> = { 0: "BIOS PXE", 7: "UEFI x86-64 PXE", 9: "UEFI x86-64 PXE", 16: "UEFI x86-64 HTTP Boot" };
export const firmwareSettingSchema = z.enum(FIRMWARE_SETTINGS, { error: "One of auto, bios, uefi" });

/** The firmware a machine boots with: its setting, else what was learned, else null (unknown). */
export function effectiveFirmware(setting: FirmwareSetting | null | undefined, learned: BootFirmware | null | undefined): BootFirmware | null {
  return setting && setting !== "auto" ? setting : (learned ?? null);
}

export const machineEnrollSchema = z.object({
  name: hostnameSchema,
  rackId: z.number().int().positive().nullish(),
  uPosition: z.number().int().min(1, "U position starts at 1").nullish(),
  uHeight: z.number().int().min(1).max(20).default(1),
  bootMac: macSchema,
  ip: ipv4Schema.nullish().or(z.literal("").transform(() => null)),
  bmc: bmcInputSchema.nullish(),
  osProfileId: z.number().int().positive().nullish(),
  network: bootNicNetworkSchema.nullish(),
  /** Omitted: auto. */
  firmware: firmwareSettingSchema.optional(),
});
export type MachineEnrollInput = z.input<typeof machineEnrollSchema>;
export type MachineEnroll = z.output<typeof machineEnrollSchema>;

export const machineUpdateSchema = z.object({
  id: z.number().int().positive(),
  name: hostnameSchema.optional(),
  rackId: z.number().int().positive().nullable().optional(),
  uPosition: z.number().int().min(1).nullable().optional(),
  uHeight: z.number().int().min(1).max(20).optional(),
  bootMac: macSchema.optional(),
  ip: ipv4Schema.nullable().optional(),
  /** Omit to keep the BMC; a password left empty keeps the stored one. */
  bmc: bmcInputSchema.extend({ password: z.string().superRefine(refineWith(ipmiPasswordProblem)).optional() }).nullable().optional(),
  osProfileId: z.number().int().positive().nullable().optional(),
  /** Omit to keep; null clears the boot NIC's static configuration. */
  network: bootNicNetworkSchema.nullable().optional(),
  firmware: firmwareSettingSchema.optional(),
});

export const SORT_FIELDS = ["name", "state", "power", "rack", "ip", "mac", "created"] as const;
export type SortField = (typeof SORT_FIELDS)[number];

/** Filter for the machine table and for bulk actions over "all matching". */
export const machineFilterSchema = z.object({
  states: z.array(z.enum(MACHINE_STATES)).max(MACHINE_STATES.length).optional(),
  rackId: z.number().int().positive().nullish(),
  power: z.enum(POWER_STATES).optional(),
  maintenance: z.boolean().optional(),
  q: z.string().trim().max(100).optional(),
  /** Inventory (reported by the agent): at least this much memory, at least this many disks, CPU model text. */
  minMemoryGiB: z.number().min(0).max(1_048_576).optional(),
  minDisks: z.number().int().min(0).max(1000).optional(),
  cpuModel: z.string().trim().max(100).optional(),
});
export type MachineFilter = z.infer<typeof machineFilterSchema>;

/** The fields of a machines.list row (lib/dto.ts MachineRow), which `fields` may select from. */
export const MACHINE_ROW_FIELDS = [
  "id",
  "name",
  "state",
  "powerState",
  "powerPending",
  "maintenance",
  "rackId",
  "rackName",
  "uPosition",
  "uHeight",
  "firmware",
  "bootFirmware",
  "bootMac",
  "ip",
  "osProfileName",
  "lastError",
  "bmcReachable",
  "bmcLastSeen",
] as const;
export type MachineRowField = (typeof MACHINE_ROW_FIELDS)[number];

export const machineListSchema = machineFilterSchema.extend({
  sort: z.enum(SORT_FIELDS).default("name"),
  dir: z.enum(["asc", "desc"]).default("asc"),
  page: z.number().int().min(1).default(1),
  pageSize: z.number().int().min(1).max(10_000).default(50),
  /**
   * Keyset paging: the `nextCursor` of the previous page (same sort and direction); `page` is then ignored. Stable
   * while machines are added or removed, and as cheap on the last page as on the first.
   */
  cursor: z.string().max(1024, "Not a cursor from machines.list").optional(),
});
export type MachineListInput = z.input<typeof machineListSchema>;

/** machines.listFields: machines.list with only these fields in each row (`id` is always included). */
export const machineListFieldsSchema = machineListSchema.extend({
  fields: z
    .array(z.enum(MACHINE_ROW_FIELDS, { error: (iss) => `Unknown field ${JSON.stringify(String(iss.input).slice(0, 40))}; the fields are ${MACHINE_ROW_FIELDS.join(", ")}` }))
    .min(1, "Name at least one field")
    .max(MACHINE_ROW_FIELDS.length),
});

/** A selection is explicit ids (this page) or a filter (all N matching). */
export const selectionSchema = z.union([
  z.object({ ids: z.array(z.number().int().positive()).min(1).max(10_000) }),
  z.object({ filter: machineFilterSchema }),
]);
export type Selection = z.output<typeof selectionSchema>;

/** The plan the operator confirmed (lib/plan.ts): the server refuses to execute a different one. */
export const planIdSchema = z.string().regex(/^[0-9a-f]{64}$/, "A plan id from machines.plan");
export const lifecycleActionSchema = z.object({
  id: z.number().int().positive(),
  action: z.enum(OPERATOR_ACTIONS),
  reason: z.string().trim().max(500).optional(),
  /** Deploy and reinstall: the OS profile to install (recorded on the machine); omitted: the machine's own. */
  osProfileId: z.number().int().positive().optional(),
});
export const bulkActionSchema = z.object({
  selection: selectionSchema,
  action: z.enum(OPERATOR_ACTIONS),
  /** Deploy and reinstall: the OS profile for the whole selection; omitted: each machine's own. */
  osProfileId: z.number().int().positive().optional(),
  planId: planIdSchema.optional(),
});
export const setOsProfileSchema = z.object({
  selection: selectionSchema,
  /** null: no profile. */
  osProfileId: z.number().int().positive().nullable(),
  planId: planIdSchema.optional(),
});

export const maintenanceSchema = z.object({
  id: z.number().int().positive(),
  on: z.boolean(),
  reason: z.string().trim().max(500).optional(),
});

export const pageSchema = z.object({
  /** Return events with id < before (newest first), for paging backwards. */
  before: z.number().int().positive().optional(),
  /** Same as `before`; the name tRPC's infinite queries use. */
  cursor: z.number().int().positive().nullish(),
  limit: z.number().int().min(1).max(500).default(50),
});

/** Filters of the Events page (all optional, combined with AND); kept in the page's URL. */
export const eventFilterSchema = z.object({
  machineId: z.number().int().positive().optional(),
  /** A machine's exact name (the Events page's machine box). */
  machine: z.string().trim().max(253).optional(),
  /** An exact kind ("job.failed"), or every kind under a prefix ending in "." ("job."). */
  kind: z.string().trim().max(64).optional(),
  /** Exactly as recorded: "user:<name>", "system" or "agent". */
  actor: z.string().trim().max(100).optional(),
  /** Time range in ms since the epoch, inclusive. */
  from: z.number().int().min(0).optional(),
  to: z.number().int().min(0).optional(),
  /** Text search in the message (literal, case-insensitive for ASCII). */
  q: z.string().trim().max(200).optional(),
});
export type EventFilter = z.infer<typeof eventFilterSchema>;

export const usernameSchema = z
  .string()
  .trim()
  .min(1, "User name is required")
  .max(64)
  .regex(/^[a-z][a-z0-9._-]*$/, "Lower-case letters, digits, '.', '_' and '-', starting with a letter");
export const passwordSchema = z.string().min(10, "At least 10 characters").max(256);
export const loginSchema = z.object({ name: z.string().trim().min(1).max(64), password: z.string().min(1).max(256) });
export const userCreateSchema = z.object({ name: usernameSchema, role: z.enum(ROLES), password: passwordSchema });
export const userUpdateSchema = z
  .object({
    id: z.number().int().positive(),
    role: z.enum(ROLES).optional(),
    password: passwordSchema.optional(),
    disabled: z.boolean().optional(),
  })
  .refine((u) => u.role !== undefined || u.password !== undefined || u.disabled !== undefined, {
    message: "Nothing to change: give a role, a password or disabled",
  });

/** A signed-in user's own password change (auth.changePassword). */
export const changePasswordSchema = z.object({ currentPassword: z.string().min(1, "Give your current password").max(256), newPassword: passwordSchema });

/** CSV import: header names accepted (case-insensitive) and the fields they map to. */
export const CSV_COLUMNS = [
  "name",
  "rack",
  "u_position",
  "u_height",
  "mac",
  "ip",
  "bmc_address",
  "bmc_port",
  "bmc_user",
  "bmc_password",
  "bmc_driver",
  "os_profile",
  /** The boot NIC's subnet (by name) and address mode (auto, static, dhcp, none): issue 14. */
  "subnet",
  "address_mode",
] as const;
export const csvImportSchema = z.object({ csv: z.string().max(5_000_000, "CSV larger than 5 MB"), dryRun: z.boolean().default(false) });
/**
 * machines.bulkEnroll: up to 10,000 machines, each an object of machines.enroll's fields. Rows are checked on the
 * server one by one, like CSV rows, so every problem comes back with its row number (1-based) and field.
 */
export const bulkEnrollSchema = z.object({
  machines: z.array(z.unknown()).min(1, "No machines to enroll").max(10_000, "At most 10,000 machines per request"),
  dryRun: z.boolean().default(false),
});

/** Turn zod issues into "field: message" for user-facing errors. */
export function formatIssues(error: z.ZodError): { field: string; message: string }[] {
  return error.issues.map((i) => ({ field: i.path.join(".") || "(input)", message: i.message }));
}

/** Power sync settings (stored in the `settings` table under "oob.powerSync"). */
export const powerSyncSettingsSchema = z.object({
  /** Seconds between sweeps. */
  intervalS: z.number().int().min(5).max(86_400).default(60),
  /** ± seconds added at random to each interval so many Rackhands do not hit BMCs in step. */
  jitterS: z.number().min(0).max(3600).default(5),
  /** BMCs asked at the same time. */
  concurrency: z.number().int().min(1).max(256).default(16),
  /** Failed sweeps in a row before a BMC is marked unreachable. */
  failureThreshold: z.number().int().min(1).max(100).default(3),
  /** Lifecycle states whose machines' power is not synced (power not managed there). */
  skipStates: z.array(z.enum(MACHINE_STATES)).max(MACHINE_STATES.length).default([]),
});
export type PowerSyncSettings = z.infer<typeof powerSyncSettingsSchema>;
/**
 * A change to some of the settings. Built without the defaults: `.partial()` keeps a field's default, so an update
 * sending only intervalS would otherwise reset the other fields.
 */
export const powerSyncSettingsPatchSchema = z.object({
  intervalS: z.number().int().min(5).max(86_400).optional(),
  jitterS: z.number().min(0).max(3600).optional(),
  concurrency: z.number().int().min(1).max(256).optional(),
  failureThreshold: z.number().int().min(1).max(100).optional(),
  skipStates: z.array(z.enum(MACHINE_STATES)).max(MACHINE_STATES.length).optional(),
});

export const POWER_ACTIONS = ["on", "off", "cycle", "reset", "soft"] as const;
export type PowerActionName = (typeof POWER_ACTIONS)[number];
/** Actions that interrupt a running OS: the UI asks for confirmation. */
export const DISRUPTIVE_POWER_ACTIONS: readonly PowerActionName[] = ["off", "cycle", "reset", "soft"];
export const POWER_ACTION_LABELS: Record<PowerActionName, string> = {
  on: "Power on",
  off: "Power off",
  cycle: "Power cycle",
  reset: "Reset",
  soft: "Soft off",
};
export const powerActionSchema = z.object({
  selection: selectionSchema,
  action: z.enum(POWER_ACTIONS),
  planId: planIdSchema.optional(),
});
export const bootDeviceSchema = z.object({
  id: z.number().int().positive(),
  device: z.enum(["pxe", "disk"]),
  persistent: z.boolean().default(false),
});
