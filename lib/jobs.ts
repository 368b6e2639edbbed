/** Job and step vocabulary shared by server and UI (isomorphic). */

export const JOB_KINDS = ["inspect", "deploy_image", "deploy_installer", "clean", "reinstall", "power_on", "power_off", "power_cycle"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/**
 * Jobs that only switch power through the BMC (bulk power as a batch). They hold the machine like any job (one
 * active job per machine), but its lifecycle state does not move: no transition when they start, end or are cancelled.
 */
export const POWER_JOB_KINDS = ["power_on", "power_off", "power_cycle"] as const satisfies readonly JobKind[];

/** Whether a job of this kind moves the machine through the lifecycle (deploy, inspect, ...), unlike power jobs. */
export function movesLifecycle(kind: JobKind): boolean {
  return !(POWER_JOB_KINDS as readonly JobKind[]).includes(kind);
}

/** queued: waits for a batch slot; running: steps in progress; the rest are final. */
export const JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const ACTIVE_JOB_STATES: readonly JobState[] = ["queued", "running"];

/**
 * pending: waits for its group or its retry time; ready: an agent step the agent may claim;
 * running: leased to a runner until lease_expires_at; the rest are final.
 */
export const STEP_STATES = ["pending", "ready", "running", "succeeded", "failed", "cancelled"] as const;
export type StepState = (typeof STEP_STATES)[number];

export const SERVER_STEPS = ["set_boot_target", "set_boot_device", "power_on", "power_cycle", "power_off", "wait_agent", "wait_install"] as const;
export const AGENT_STEPS = ["inventory", "wipe", "raid", "write_image", "configure_network", "run_script", "reboot"] as const;
export type ServerStepName = (typeof SERVER_STEPS)[number];
export type AgentStepName = (typeof AGENT_STEPS)[number];
export type StepName = ServerStepName | AgentStepName;

export interface StepDto {
  id: number;
  group: number;
  name: string;
  runner: "server" | "agent";
  state: StepState;
  attempt: number;
  maxAttempts: number;
  timeoutS: number;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  nextAttemptAt: number | null;
}

export interface JobDto {
  id: number;
  machineId: number;
  batchId: number | null;
  kind: JobKind;
  state: JobState;
  error: string | null;
  createdBy: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  steps: StepDto[];
}

export interface LogLineDto {
  seq: number;
  ts: number;
  stream: string;
  text: string;
  stepId: number | null;
}
