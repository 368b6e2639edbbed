import { classifyFailure } from "../../lib/step-failure";

/**
 * What the orchestrator needs from the out-of-band and netboot modules (the consumer owns the port).
 * Implementations throw StepFailure (lib/step-failure.ts) or an AppError, classified by its code, on failure.
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

/**
 * Whether a server step's failure may be retried: StepFailure says so itself; AppErrors by their code (the one list,
 * lib/step-failure.ts TRANSIENT_CODES); anything else is permanent.
 */
export const classify = classifyFailure;
