import { processOwner } from "../db/pg/leases";
import type { StepState } from "../../lib/jobs";
import type { LiveEvent } from "../../lib/live-events";
import type { MachinePorts } from "./ports";
import type { JobRow, StepRow } from "./orchestrator-queries";

/**
 * What the orchestrator (orchestrator.ts) knows of each kind of step: how a server step runs through the machine's
 * ports, which steps are passive waits and what ends them, and the live event of a step that moved.
 *
 * Passive steps wait for something outside (the agent booting, the installer finishing) and run nothing: each ends
 * when its event, recorded in a column of its job, has happened — the agent's lookup (`jobs.agent_seen_at`) or the
 * installer's report (`jobs.install_done_at`).
 */
const WAIT_EVENTS = { wait_agent: "agentSeenAt", wait_install: "installDoneAt" } as const;
type PassiveStep = keyof typeof WAIT_EVENTS;
type WaitEvent = (typeof WAIT_EVENTS)[PassiveStep];
export const PASSIVE = new Set<string>(Object.keys(WAIT_EVENTS));

/** A process's default lease owner: host and pid, in the characters lease owners allow. */
export function defaultOwner(): string {
  return processOwner();
}

/** Run a server step through the machine's ports (boot target, boot device, power). */
export async function runServerPort(ports: MachinePorts, s: StepRow, m: number): Promise<Record<string, unknown> | void> {
  const p = s.params ?? {};
  switch (s.name) {
    case "set_boot_target":
      return ports.setBootTarget(m, p.target as "agent" | "installer" | "disk");
    case "set_boot_device":
      return ports.setBootDevice(m, p.device as "pxe" | "disk", Boolean(p.persistent));
    case "power_on":
      return ports.powerOn(m);
    case "power_cycle":
      return ports.powerCycle(m);
    case "power_off":
      return ports.powerOff(m);
    default:
      throw new Error(`no server handler for step ${s.name}`);
  }
}

/** The timeline's (and batch page's) live event for a step that moved (published after the commit). */
export function stepChanged(job: { machineId: number; batchId: number | null }, s: StepRow, state: StepRow["state"]): LiveEvent {
  return { type: "step.changed", jobId: s.jobId, machineId: job.machineId, batchId: job.batchId, stepId: s.id, state: state as StepState };
}

/** What a passive step's wait produced, when its event already happened (null: keep waiting). */
export function waitSatisfied(job: Pick<JobRow, WaitEvent>, name: string): Record<string, unknown> | null {
  const event = WAIT_EVENTS[name as PassiveStep];
  const at = event ? job[event] : null;
  return at ? { [event]: at.getTime() } : null;
}
