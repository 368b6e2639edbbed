/** Batch vocabulary, input schemas and DTOs shared by server and UI (isomorphic). */
import { z } from "zod";
import { JOB_KIND_ACTION, type JobKind, type JobState } from "./jobs";
import type { MachineState, OperatorAction } from "./lifecycle";
import { planIdSchema, selectionSchema, type PowerState } from "./schemas";

/**
 * What a batch does to each machine. Each kind is one orchestrator job per machine. The power kinds switch power
 * through the BMC (a power_* job: retried, timed out, recorded) without moving the machine's lifecycle state; the
 * immediate oob.power API remains for one machine and small selections.
 */
export const BATCH_KINDS = ["deploy", "reinstall", "clean", "inspect", "power_on", "power_off", "power_cycle"] as const;
export type BatchKind = (typeof BATCH_KINDS)[number];

export const BATCH_KIND_LABELS: Record<BatchKind, string> = {
  deploy: "Deploy",
  reinstall: "Reinstall",
  clean: "Release",
  inspect: "Inspect",
  power_on: "Power on",
  power_off: "Power off",
  power_cycle: "Power cycle",
};

/**
 * The job kind a batch of each kind runs (a deploy or reinstall batch plans each machine's job from its OS profile,
 * so its jobs may be deploy_installer; they start with the same action).
 */
const BATCH_JOB_KIND: Record<BatchKind, JobKind> = {
  deploy: "deploy_image",
  reinstall: "reinstall",
  clean: "clean",
  inspect: "inspect",
  power_on: "power_on",
  power_off: "power_off",
  power_cycle: "power_cycle",
};

/** The operator action each job of a batch starts with (from the job kind's spec); null for power batches. */
export function batchAction(kind: BatchKind): OperatorAction | null {
  return JOB_KIND_ACTION[BATCH_JOB_KIND[kind]];
}

/** The batch kind that runs an operator action on many machines (deploy, reinstall, release, inspect), if any. */
export function batchKindOf(action: OperatorAction): BatchKind | undefined {
  return BATCH_KINDS.find((k) => batchAction(k) === action);
}

/** Kinds that overwrite disks. */
export const DESTRUCTIVE_BATCH_KINDS: readonly BatchKind[] = ["deploy", "reinstall", "clean"];
/** Kinds that only switch power (no lifecycle move); each machine needs a BMC. */
export const POWER_BATCH_KINDS: readonly BatchKind[] = ["power_on", "power_off", "power_cycle"];
/** Kinds the operator confirms by typing the number of machines: those that erase disks or cut power. */
export const CONFIRM_BATCH_KINDS: readonly BatchKind[] = [...DESTRUCTIVE_BATCH_KINDS, "power_off", "power_cycle"];

/**
 * running: starts queued jobs up to the concurrency limit; paused: starts nothing new (running jobs finish),
 * after the failure threshold was passed; finished: nothing left to run; aborted: queued jobs were cancelled.
 */
export const BATCH_STATES = ["running", "paused", "finished", "aborted"] as const;
export type BatchState = (typeof BATCH_STATES)[number];

/**
 * Failed jobs needed before the threshold is judged: at least this many finished jobs (or the whole batch when it
 * is smaller), so one early failure in a large batch does not stop it. A threshold of 0 pauses at the first failure.
 */
export const MIN_FAILURE_SAMPLE = 3;

export const batchCreateSchema = z.object({
  selection: selectionSchema,
  kind: z.enum(BATCH_KINDS),
  concurrency: z.number().int().min(1).max(500).default(10),
  failureThresholdPct: z.number().int().min(0).max(100).default(20),
  /** The number of machines the operator typed to confirm a CONFIRM_BATCH_KINDS kind: the number of machines that will act (its plan's `acting`). */
  confirmCount: z.number().int().min(0).optional(),
  /** Deploy and reinstall: the OS profile for the whole selection (recorded on each machine); omitted: each machine's own. */
  osProfileId: z.number().int().positive().optional(),
  /** The plan the operator confirmed (machines.plan); a different plan now is refused as stale. */
  planId: planIdSchema.optional(),
});
export type BatchCreateInput = z.input<typeof batchCreateSchema>;

export const batchIdSchema = z.object({ id: z.number().int().positive() });
export const batchAbortSchema = batchIdSchema.extend({
  /** Also cancel running jobs (their machines go to *_failed; nothing is powered off). Default: let them finish. */
  cancelRunning: z.boolean().default(false),
});
export const batchListSchema = z.object({
  state: z.enum(BATCH_STATES).optional(),
  limit: z.number().int().min(1).max(200).default(50),
});

export const batchSettingsSchema = z.object({
  /** Where alerts are POSTed (JSON); null = no webhook. */
  webhookUrl: z
    .url({ protocol: /^https?$/, message: "Enter an http:// or https:// URL" })
    .max(500)
    .nullable()
    .default(null),
  /** The dashboard's address as operators reach it, for links in webhook payloads; null = the server's own address. */
  publicUrl: z
    .url({ protocol: /^https?$/, message: "Enter an http:// or https:// URL" })
    .max(500)
    .nullable()
    .default(null),
});
export type BatchSettings = z.infer<typeof batchSettingsSchema>;

export interface BatchCounts {
  total: number;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

/** The last alert a batch raised and what became of its webhook. */
export interface BatchAlert {
  at: number;
  message: string;
  webhook: { state: "none" | "sending" | "sent" | "failed"; attempts: number; error: string | null };
}

export interface BatchDto {
  id: number;
  kind: BatchKind;
  state: BatchState;
  concurrency: number;
  failureThresholdPct: number;
  createdBy: string | null;
  createdAt: number;
  finishedAt: number | null;
  counts: BatchCounts;
  /** Machines refused when the batch was created (never queued). */
  skipped: number;
  alert: BatchAlert | null;
}

export interface BatchMachineDto {
  machineId: number;
  machineName: string;
  machineState: MachineState;
  powerState: PowerState;
  jobId: number;
  jobState: JobState;
  /** The step in progress (or waiting for a retry) while the job runs. */
  currentStep: { name: string; attempt: number; maxAttempts: number; state: string } | null;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface BatchSkipped {
  machineId: number;
  name: string;
  error: string;
}

export interface BatchDetailDto extends BatchDto {
  machines: BatchMachineDto[];
  skippedMachines: BatchSkipped[];
}

export interface BatchCreated {
  batchId: number;
  queued: number;
  skipped: BatchSkipped[];
}

/** Whether the failure ratio passes the threshold (see MIN_FAILURE_SAMPLE). Counts are those since the last resume. */
export function passesThreshold(failed: number, finished: number, total: number, thresholdPct: number): boolean {
  if (failed === 0) return false;
  if (thresholdPct === 0) return true;
  if (finished < Math.min(MIN_FAILURE_SAMPLE, total)) return false;
  return failed * 100 > thresholdPct * finished;
}
