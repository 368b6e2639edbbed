/**
 * Out-of-band driver interfaces, one per capability (DESIGN §5, Ironic `drivers/base.py`). Each is small and has
 * a `validate()` that checks the stored BMC parameters without talking to the BMC. A driver is a composition of
 * capabilities; `registry.ts` maps `bmcs.driver` to one.
 */
import type { PowerResult } from "../../lib/dto";
import type { BmcPrivilege, PowerActionName } from "../../lib/schemas";

/** Everything needed to reach one BMC. Built per call from the `bmcs` row; the password is decrypted only here. */
export interface BmcTarget {
  machineId: number;
  address: string;
  port: number;
  username: string;
  password: string;
  privilege: BmcPrivilege;
  cipherSuite: number;
}

export type ChassisPower = "on" | "off";
export type PowerAction = PowerActionName;
export type BootDevice = "pxe" | "disk";

export interface PowerInterface {
  validate(t: BmcTarget): void;
  /** @throws AppError BMC_* */
  getPower(t: BmcTarget): Promise<ChassisPower>;
  /** Asks for the change; does not wait for it (the caller confirms by polling getPower). @throws AppError BMC_* */
  setPower(t: BmcTarget, action: PowerAction): Promise<void>;
}

export interface BootDeviceInterface {
  validate(t: BmcTarget): void;
  /**
   * `efi`: ask for the UEFI boot type (IPMI boot flags "EFI boot"), for machines that boot UEFI.
   * @throws AppError BMC_*
   */
  setBootDevice(t: BmcTarget, device: BootDevice, persistent: boolean, efi?: boolean): Promise<void>;
}

export interface ReachabilityInterface {
  validate(t: BmcTarget): void;
  /** "Ping the BMC": one authenticated request. Resolves with a short description. @throws AppError BMC_* */
  check(t: BmcTarget): Promise<{ info: string }>;
}

/** A live serial-over-LAN stream. Bytes are raw terminal output. */
export interface ConsoleStream {
  write(data: string | Buffer): void;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once when the stream ends, for whatever reason. */
  onClose(listener: (reason: string) => void): void;
  close(): Promise<void>;
}

export interface ConsoleInterface {
  validate(t: BmcTarget): void;
  /** @throws AppError BMC_* */
  open(t: BmcTarget): Promise<ConsoleStream>;
}

export interface OobDriver {
  name: string;
  power: PowerInterface;
  bootDevice: BootDeviceInterface;
  reachability: ReachabilityInterface;
  console: ConsoleInterface;
}

/** Process-wide knobs for talking to BMCs (from Config; tests inject their own). All times in milliseconds. */
export interface OobConfig {
  ipmitoolPath: string;
  /** Hard limit per ipmitool run; the child is killed (SIGKILL) when it expires. */
  callTimeoutMs: number;
  /** Attempts per operation for transient errors (1 = no retry). */
  attempts: number;
  /** First backoff delay; doubles per attempt. */
  backoffMs: number;
  /** Minimum gap between the end of one command and the start of the next to the same BMC. */
  spacingMs: number;
  /**
   * How status reads (power state, reachability) talk to the BMC: "native" = Rackhand's own RMCP+ probe
   * (rmcp/probe.ts, no child process), falling back to one ipmitool call on any doubt; "ipmitool" = always
   * ipmitool. Every action (power, boot device, console) always uses ipmitool.
   */
  statusProbe: "native" | "ipmitool";
  /** Per request/response exchange of the native probe. */
  probeStepTimeoutMs: number;
  /** How long to poll for a power change to show before giving up (POWER_STATE_UNKNOWN). */
  confirmTimeoutMs: number;
  /** Where console transcripts go: <dataDir>/consoles. */
  consoleDir: string;
  /** Transcript size cap per file before rotating (bytes), and how many rotated files to keep. */
  transcriptMaxBytes: number;
  transcriptKeep: number;
  /** A console with no viewers stays open this long, so a page reload does not drop the session. */
  consoleGraceMs: number;
}

/** What the native status probe did since start, for /metrics and the bench. */
export interface ProbeStats {
  /** Reads answered by the native probe. */
  native: number;
  /** Reads the native probe could not answer, asked again with ipmitool. */
  fallback: number;
  /** Reads that went to ipmitool directly (probe off, or a cipher suite it does not speak). */
  ipmitool: number;
  lastFallbackReason?: string;
}

/** One power-sync sweep. */
export interface SweepStats {
  /** Machines with a BMC, not in maintenance, in a state whose power is synced. */
  machines: number;
  ok: number;
  failed: number;
  /** Power states that differed from what Rackhand had recorded. */
  changed: number;
  /** Rows written (power changes, reachability changes, stale last-seen times), all in one transaction. */
  written: number;
  durationMs: number;
  /** CPU of this process during the sweep (user + system); children (ipmitool fallbacks) are not included. */
  cpuMs: number;
  at: string;
}

/** A power action accepted by oob.powerStart and confirmed in the background; waited on with oob.powerWait. */
export interface PowerOperation {
  id: string;
  createdAt: number;
  done: boolean;
  results: PowerResult[] | null;
  finished: Promise<PowerResult[]>;
}
