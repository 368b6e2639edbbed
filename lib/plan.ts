/**
 * The plan of a bulk operation (isomorphic): what the server will do to each machine of a selection before the
 * operator confirms — act or skip with the reason, what changes on each acting machine, totals — and the plan id
 * that confirming sends back, so that the server executes exactly that plan or refuses it as stale.
 */
import { z } from "zod";
import { BATCH_KINDS } from "./batches";
import type { MachineState } from "./lifecycle";
import { OPERATOR_ACTIONS } from "./lifecycle";
import { POWER_ACTIONS, selectionSchema } from "./schemas";

const profileId = z.number().int().positive();

/**
 * A bulk operation: a lifecycle action applied at once (machines.bulkAction), a power action at once (oob.power),
 * a batch (batches.create), or setting the OS profile (machines.setOsProfile). Deploy and reinstall (as actions or
 * batches) may name the OS profile for the whole selection; without one each machine's own profile is used.
 */
export const bulkOpSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("action"), action: z.enum(OPERATOR_ACTIONS), osProfileId: profileId.optional() }),
  z.object({ type: z.literal("power"), action: z.enum(POWER_ACTIONS) }),
  z.object({ type: z.literal("batch"), kind: z.enum(BATCH_KINDS), osProfileId: profileId.optional() }),
  z.object({ type: z.literal("setProfile"), osProfileId: profileId.nullable() }),
]);
export type BulkOp = z.output<typeof bulkOpSchema>;


export const planInputSchema = z.object({
  selection: selectionSchema,
  op: bulkOpSchema,
  /** Rows returned (acting rows first); totals always cover the whole selection. */
  limit: z.number().int().min(0).max(10_000).default(1000),
});
export type PlanInput = z.input<typeof planInputSchema>;

/** Why a machine is skipped. */
export const SKIP_REASONS = ["missing", "state", "maintenance", "no_bmc", "no_profile", "bad_profile", "busy", "firmware", "unchanged"] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];
export const SKIP_REASON_LABELS: Record<SkipReason, string> = {
  missing: "no longer exists",
  state: "state does not allow it",
  maintenance: "in maintenance",
  no_bmc: "no BMC",
  no_profile: "no OS profile",
  bad_profile: "OS profile cannot be deployed",
  busy: "busy with a job",
  firmware: "image does not fit the firmware",
  unchanged: "already so",
};

export interface PlanRow {
  id: number;
  name: string;
  act: boolean;
  /** Set when skipped. */
  reason: SkipReason | null;
  /** Why it is skipped, or a one-line summary of what happens, in the UI's words. */
  detail: string;
  from: MachineState;
  /** The lifecycle state the machine moves to; null when it does not move (power, profile, skipped). */
  to: MachineState | null;
  /** What changes on this machine, in order (boot entries, boot device, power, disks, image, profile). */
  changes: string[];
  /** The OS profile the machine is deployed with or set to (acting rows), else its own. */
  profile: string | null;
}

export interface PlanTotal {
  label: string;
  count: number;
}

export interface BulkPlan {
  planId: string;
  op: BulkOp;
  /** "Deploy", "Power off", "Set OS profile" ... */
  title: string;
  total: number;
  acting: number;
  skipped: number;
  /** Skips by reason, most first. */
  skipTotals: (PlanTotal & { reason: SkipReason })[];
  /** Acting machines by state transition ("Available → Deploying"), most first. */
  transitions: PlanTotal[];
  /** Acting machines by change, in the order the changes happen. */
  changes: PlanTotal[];
  /** Acting rows first, then skipped; at most `limit`. */
  rows: PlanRow[];
  rowsTruncated: boolean;
}

/** The message of the refusal when a confirmed plan no longer matches the fleet (the dialog then plans again). */
export const STALE_PLAN_MESSAGE = "The plan is stale: the machines changed since it was made; review the new plan";
