/** Shapes the server returns to the UI. Never carries a BMC password or its ciphertext. */
import type { MachineState, OperatorAction } from "./lifecycle";
import type { BootFirmware, FirmwareSetting, PowerState, Role } from "./schemas";

export interface MachineRow {
  id: number;
  name: string;
  state: MachineState;
  powerState: PowerState;
  /** A power action is under way towards this state (shown as "powering on…" until the BMC confirms). */
  powerPending: "on" | "off" | null;
  maintenance: boolean;
  rackId: number | null;
  rackName: string | null;
  uPosition: number | null;
  uHeight: number;
  /** Boot firmware setting (auto | bios | uefi) and the firmware its last network boot request showed. */
  firmware: FirmwareSetting;
  bootFirmware: BootFirmware | null;
  bootMac: string | null;
  ip: string | null;
  osProfileName: string | null;
  lastError: string | null;
  bmcReachable: boolean | null;
  bmcLastSeen: number | null;
}

export interface MachineDetail extends MachineRow {
  maintenanceReason: string | null;
  osProfileId: number | null;
  /** Client architecture (DHCP option 93) of the last network boot request, and when it was seen. */
  bootArch: number | null;
  bootSeenAt: number | null;
  inventory: Record<string, unknown> | null;
  createdAt: number;
  updatedAt: number;
  nics: { id: number; mac: string; ip: string | null; isBoot: boolean; ifname: string | null; prefix: number | null; gateway: string | null }[];
  bmc: {
    driver: string;
    address: string;
    port: number;
    username: string;
    hasPassword: boolean;
    reachable: boolean | null;
    lastSeen: number | null;
    privilege: string;
    cipherSuite: number;
    lastError: string | null;
  } | null;
  allowedActions: OperatorAction[];
}

export interface RackSummary {
  id: number;
  name: string;
  site: string | null;
  row: string | null;
  heightU: number;
  machineCount: number;
  usedU: number;
}

export interface RackElevation extends RackSummary {
  machines: Pick<
    MachineRow,
    "id" | "name" | "state" | "powerState" | "powerPending" | "maintenance" | "uPosition" | "uHeight" | "bootMac" | "ip" | "lastError" | "bmcReachable" | "bmcLastSeen" | "firmware" | "bootFirmware"
  >[];
}

export interface SessionUser {
  id: number;
  name: string;
  role: Role;
}

export interface BulkResult {
  id: number;
  name: string;
  ok: boolean;
  error?: string;
  state?: MachineState;
  /** Skipped by the plan (never touched); `error` says why. */
  skipped?: boolean;
  /** Set OS profile: the profile the machine now has (null: none). */
  profile?: string | null;
}

/** One machine's outcome of a power action (bulk actions never fail all-or-nothing). */
export interface PowerResult {
  id: number;
  name: string;
  ok: boolean;
  powerState?: PowerState;
  /** From oob.powerStart: accepted, and will lead to this state once confirmed. */
  pending?: "on" | "off";
  error?: string;
  code?: string;
  /** Skipped by the plan (never touched); `error` says why. */
  skipped?: boolean;
}

export interface BmcCheckResult {
  reachable: boolean;
  info?: string;
  error?: string;
  code?: string;
}
