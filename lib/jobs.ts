/** Job and step vocabulary shared by server and UI (isomorphic). */
import type { OperatorAction } from "./lifecycle";

export const JOB_KINDS = ["inspect", "deploy_image", "deploy_installer", "deploy_agent_install", "clean", "reinstall", "power_on", "power_off", "power_cycle"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/**
 * Jobs that only switch power through the BMC (bulk power as a batch). They hold the machine like any job (one
 * active job per machine), but its lifecycle state does not move: no transition when they start, end or are cancelled.
 */
export const POWER_JOB_KINDS = ["power_on", "power_off", "power_cycle"] as const satisfies readonly JobKind[];

/**
 * The lifecycle part of each job kind's spec (its steps are in server/orchestrator/kinds.ts): the operator action a
 * job of this kind starts with, taken when the job starts. null: power jobs, which move no lifecycle state. The one
 * kind → action mapping: the server's job start, batches and the UI's bulk actions read it from here.
 */
export const JOB_KIND_ACTION: Record<JobKind, OperatorAction | null> = {
  inspect: "inspect",
  clean: "release",
  deploy_image: "deploy",
  deploy_installer: "deploy",
  deploy_agent_install: "deploy",
  reinstall: "reinstall",
  power_on: null,
  power_off: null,
  power_cycle: null,
};

/** Whether a job of this kind moves the machine through the lifecycle (deploy, inspect, ...), unlike power jobs. */
export function movesLifecycle(kind: JobKind): boolean {
  return JOB_KIND_ACTION[kind] !== null;
}

/** queued: waits for a batch slot; running: steps in progress; the rest are final. */
export const JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const ACTIVE_JOB_STATES: readonly JobState[] = ["queued", "running"];

/**
 * The job state table (as lib/lifecycle.ts is the machine's): the moves a job may make. Written only by
 * server/orchestrator/job-state.ts (startJob, closeJob, cancelJob), which checks every move against it.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  // A batch's job waits for a slot; it starts, or is cancelled (batch aborted), or fails to start (refused transition).
  queued: ["running", "failed", "cancelled"],
  running: ["succeeded", "failed", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/**
 * pending: waits for its group or its retry time; ready: an agent step the agent may claim;
 * running: leased to a runner until lease_expires_at; the rest are final.
 */
export const STEP_STATES = ["pending", "ready", "running", "succeeded", "failed", "cancelled"] as const;
export type StepState = (typeof STEP_STATES)[number];

/**
 * The step state table. The engine moves steps (ready, claimed, finished, retried); closing a job cancels every step
 * it left unfinished; a restart puts its own server steps back to pending.
 */
export const STEP_TRANSITIONS: Readonly<Record<StepState, readonly StepState[]>> = {
  pending: ["ready", "running", "cancelled"],
  ready: ["running", "cancelled"],
  // pending: a retry after a transient failure, or a server step re-run after a restart.
  running: ["succeeded", "failed", "pending", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** The states a job's step may be in while it has not finished: closing the job cancels them. */
export const UNFINISHED_STEP_STATES = (Object.keys(STEP_TRANSITIONS) as StepState[]).filter((s) => STEP_TRANSITIONS[s].includes("cancelled"));

export const SERVER_STEPS = ["set_boot_target", "set_boot_device", "power_on", "power_cycle", "power_off", "wait_agent", "wait_install"] as const;
export const AGENT_STEPS = [
  ...["inventory", "wipe", "raid", "write_image", "configure_network", "run_script", "reboot"],
  // Agent installs (deploy_agent_install): clear a used disk, partition, debootstrap, configure, boot loader.
  ...["clear_disks", "partition", "debootstrap", "configure_os", "bootloader"],
] as const;
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
