import { AppError, type ErrorCode } from "../../lib/errors";
import { StepError } from "./retry";

/**
 * What the orchestrator needs from the out-of-band and netboot modules (the consumer owns the port).
 * Implementations throw StepError (or an AppError, classified below) on failure.
 */
export interface MachinePorts {
  /** Point the machine's network boot entry at the agent RAM disk, the installer, or its local disk. */
  setBootTarget(machineId: number, target: "agent" | "installer" | "disk"): Promise<void>;
  setBootDevice(machineId: number, device: "pxe" | "disk", persistent: boolean): Promise<void>;
  powerOn(machineId: number): Promise<void>;
  /** Power-cycle a machine that is on, power on one that is off. */
  powerCycle(machineId: number): Promise<void>;
  powerOff(machineId: number): Promise<void>;
}

// Domain errors that may pass by themselves: a BMC that does not answer now may answer in a minute.
const TRANSIENT_CODES: readonly string[] = ["BMC_UNREACHABLE", "BMC_ERROR", "POWER_STATE_UNKNOWN", "MACHINE_BUSY"];

/** Whether a failure may be retried: StepError says so itself; AppErrors by code; anything else is permanent. */
export function classify(err: unknown): { transient: boolean; message: string } {
  if (err instanceof StepError) return { transient: err.transient, message: err.message };
  if (err instanceof AppError) return { transient: TRANSIENT_CODES.includes(err.code as ErrorCode), message: err.message };
  return { transient: false, message: err instanceof Error ? err.message : String(err) };
}
