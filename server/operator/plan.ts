/**
 * The plan of a bulk operation (lib/plan.ts), computed by the server from the database in a few set queries (no
 * per-machine query), so that "all 10,000 matching" plans in well under a second. Executing a bulk operation
 * computes the plan again: with the plan id the operator confirmed, a different plan is refused as stale.
 */
import { createHash } from "node:crypto";
import { and, eq, inArray, notInArray } from "drizzle-orm";
import { BATCH_KIND_LABELS, batchAction, POWER_BATCH_KINDS, type BatchKind } from "../../lib/batches";
import { AppError, type ErrorCode } from "../../lib/errors";
import { ACTIVE_JOB_STATES, POWER_JOB_KINDS, type JobKind } from "../../lib/jobs";
import { ACTION_LABELS, nextState, STATE_LABELS, type MachineState, type OperatorAction } from "../../lib/lifecycle";
import {
  SKIP_REASON_LABELS,
  STALE_PLAN_MESSAGE,
  type BulkOp,
  type BulkPlan,
  type PlanRow,
  type PlanTotal,
  type SkipReason,
} from "../../lib/plan";
import { POWER_ACTION_LABELS, type BootFirmware, type FirmwareSetting, type PowerActionName } from "../../lib/schemas";
import type { Domain } from "../context";
import type { OsProfile } from "../db/schema";
import { storeOf, type Store } from "../db/store";
import { resolveSelectionIn, type Selection } from "../machines/selection";
import { deployKind, firmwareMismatch, jobChanges, profileProblem, REPLANNED_ON_RETRY } from "./plan-changes";

/** Actions that run a job on the machine (boot the agent or an installer through its BMC). */
const JOB_ACTIONS: readonly OperatorAction[] = ["inspect", "deploy", "reinstall", "release", "retry"];
const PROFILE_ACTIONS: readonly OperatorAction[] = ["deploy", "reinstall"];

interface Candidate {
  id: number;
  name: string;
  state: MachineState;
  maintenance: boolean;
  osProfileId: number | null;
  firmware: FirmwareSetting;
  bootFirmware: BootFirmware | null;
  hasBmc: boolean;
}

/** A plan with every row (the digest and the execution need them all; the API returns at most `limit`). */
export interface FullPlan extends Omit<BulkPlan, "rows" | "rowsTruncated"> {
  rows: PlanRow[];
  /** The OS profile each acting machine is deployed with or set to (by machine id). */
  profileOf: Map<number, number | null>;
}

const jobLabel = (j: { id: number; kind: string }) => `${j.kind.replace(/_/g, " ")} job #${j.id}`;

function titleOf(op: BulkOp): string {
  switch (op.type) {
    case "action":
      return ACTION_LABELS[op.action];
    case "power":
      return POWER_ACTION_LABELS[op.action];
    case "batch":
      return BATCH_KIND_LABELS[op.kind];
    case "setProfile":
      return "Set OS profile";
  }
}

/** Refuse an OS profile choice the operation cannot take, and a chosen profile that does not exist or cannot deploy. */
function chosenProfile(op: BulkOp, profiles: Map<number, OsProfile>): OsProfile | null | undefined {
  const id = "osProfileId" in op ? op.osProfileId : undefined;
  if (id === undefined) return undefined;
  const action = op.type === "action" ? op.action : op.type === "batch" ? batchAction(op.kind) : null;
  if (op.type !== "setProfile" && !(action && PROFILE_ACTIONS.includes(action))) {
    throw new AppError("VALIDATION", "An OS profile can be chosen only for Deploy, Reinstall and Set OS profile", [
      { field: "osProfileId", message: "Not for this action" },
    ]);
  }
  if (id === null) return null;
  const p = profiles.get(id);
  if (!p) throw new AppError("NOT_FOUND", `OS profile ${id} does not exist`, [{ field: "osProfileId", message: "No such profile" }]);
  const problem = op.type !== "setProfile" ? profileProblem(p) : null;
  if (problem) throw new AppError("VALIDATION", problem, [{ field: "osProfileId", message: problem }]);
  return p;
}

/** What a plan reads: OS profiles, the selected machines, their active jobs, and (retry) their last failed jobs. */
interface PlanReads {
  profiles: Map<number, OsProfile>;
  byId: Map<number, Candidate>;
  active: Map<number, { id: number; kind: string; state: string }>;
  lastFailed: Map<number, JobKind>;
}

function actionOf(op: BulkOp): OperatorAction | null {
  return op.type === "action" ? op.action : op.type === "batch" ? batchAction(op.kind) : null;
}

/**
 * Plan a bulk operation over a selection: one row per machine (in the selection's order), acting rows decided by
 * the same rules the execution applies, and the plan id (a digest of every decision and of the profiles used).
 * Reads through the Store (either database).
 * @throws AppError VALIDATION (profile choice not allowed or not deployable), NOT_FOUND (no such profile)
 */
export async function computePlanIn(d: Domain, selection: Selection, op: BulkOp): Promise<FullPlan> {
  const ids = await resolveSelectionIn(d, selection);
  return decidePlan(ids, op, await readPlanIn(storeOf(d), ids, op));
}

/** What the plan reads, IN lists in chunks of 500 (PostgreSQL's and SQLite's bound limits). */
async function readPlanIn(store: Store, ids: number[], op: BulkOp): Promise<PlanReads> {
  const { osProfiles: op_, machines: m, bmcs: b, jobs: j } = store.t;
  const profiles = new Map((await store.db.select().from(op_)).map((p) => [p.id, p]));
  const byId = new Map<number, Candidate>();
  const active = new Map<number, { id: number; kind: string; state: string }>();
  const lastFailed = new Map<number, JobKind>();
  const retry = actionOf(op) === "retry";
  const failed: { m: number; id: number; kind: string }[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    for (const r of await store.db
      .select({ id: m.id, name: m.name, state: m.state, maintenance: m.maintenance, osProfileId: m.osProfileId, firmware: m.firmware, bootFirmware: m.bootFirmware, bmc: b.machineId })
      .from(m)
      .leftJoin(b, eq(b.machineId, m.id))
      .where(inArray(m.id, chunk))) {
      byId.set(r.id, { id: r.id, name: r.name, state: r.state, maintenance: r.maintenance, osProfileId: r.osProfileId, firmware: r.firmware, bootFirmware: r.bootFirmware, hasBmc: r.bmc !== null });
    }
    for (const x of await store.db
      .select({ m: j.machineId, id: j.id, kind: j.kind, state: j.state })
      .from(j)
      .where(and(inArray(j.machineId, chunk), inArray(j.state, [...ACTIVE_JOB_STATES])))) {
      active.set(x.m, x);
    }
    if (retry) {
      failed.push(
        ...(await store.db
          .select({ m: j.machineId, id: j.id, kind: j.kind })
          .from(j)
          .where(and(inArray(j.machineId, chunk), inArray(j.state, ["failed", "cancelled"]), notInArray(j.kind, [...POWER_JOB_KINDS])))),
      );
    }
  }
  for (const x of failed.sort((a, b) => b.id - a.id)) if (!lastFailed.has(x.m)) lastFailed.set(x.m, x.kind as JobKind);
  return { profiles, byId, active, lastFailed };
}

/** The plan's decisions from what it read (no database). */
function decidePlan(ids: number[], op: BulkOp, reads: PlanReads): FullPlan {
  const { profiles, byId, active, lastFailed } = reads;
  const chosen = chosenProfile(op, profiles);
  const action = actionOf(op);
  const changeCache = new Map<string, string[]>();
  const changesOf = (kind: JobKind, p: OsProfile | null) => {
    const key = `${kind}:${p?.id ?? ""}`;
    let c = changeCache.get(key);
    if (!c) changeCache.set(key, (c = jobChanges(kind, p)));
    return c;
  };
  const profileOf = new Map<number, number | null>();
  const rows: PlanRow[] = [];
  const skip = (m: Candidate, reason: SkipReason, detail: string, profile: string | null = null): PlanRow => ({
    id: m.id,
    name: m.name,
    act: false,
    reason,
    detail,
    from: m.state,
    to: null,
    changes: [],
    profile,
  });

  const powerAction: PowerActionName | null =
    op.type === "power" ? op.action : op.type === "batch" && POWER_BATCH_KINDS.includes(op.kind) ? (op.kind.slice("power_".length) as PowerActionName) : null;

  const planOne = (m: Candidate): PlanRow => {
    const own = m.osProfileId === null ? null : (profiles.get(m.osProfileId) ?? null);
    if (op.type === "setProfile") {
      const to = chosen ?? null;
      if ((to?.id ?? null) === m.osProfileId) return skip(m, "unchanged", `already has ${to ? `OS profile ${to.name}` : "no OS profile"}`, own?.name ?? null);
      if (to) {
        const fw = firmwareMismatch(to, m.firmware, m.bootFirmware);
        if (fw) return skip(m, "firmware", fw, own?.name ?? null);
      }
      profileOf.set(m.id, to?.id ?? null);
      const change = `OS profile: ${own?.name ?? "none"} → ${to?.name ?? "none"}`;
      return { id: m.id, name: m.name, act: true, reason: null, detail: change, from: m.state, to: null, changes: [change], profile: to?.name ?? null };
    }
    const busyJob = active.get(m.id);
    if (powerAction) {
      if (!m.hasBmc) return skip(m, "no_bmc", "has no BMC to switch its power", own?.name ?? null);
      // The words of hand-power.ts, which refuses the same machine the same way.
      if (busyJob) return skip(m, "busy", `${jobLabel(busyJob)} is ${busyJob.state}; cancel it before changing the power by hand`, own?.name ?? null);
      const label = POWER_ACTION_LABELS[powerAction];
      return { id: m.id, name: m.name, act: true, reason: null, detail: label, from: m.state, to: null, changes: [label], profile: own?.name ?? null };
    }
    const a = action!;
    const to = nextState(m.state, a);
    if (a === "abort") {
      if (!to) return skip(m, "state", `${ACTION_LABELS[a]} is not allowed in state ${STATE_LABELS[m.state]}`, own?.name ?? null);
      const changes = busyJob ? [`${jobLabel(busyJob)} cancelled`] : [];
      return row(m, to, changes, own);
    }
    if (busyJob) return skip(m, "busy", `busy: ${jobLabel(busyJob)} is ${busyJob.state}`, own?.name ?? null);
    if (!to) return skip(m, "state", `${ACTION_LABELS[a]} is not allowed in state ${STATE_LABELS[m.state]}`, own?.name ?? null);
    // Maintenance: hands off (every action but abort, which stops work already running).
    if (m.maintenance) return skip(m, "maintenance", "in maintenance", own?.name ?? null);
    if (JOB_ACTIONS.includes(a) && !m.hasBmc) return skip(m, "no_bmc", "has no BMC to boot it from the network", own?.name ?? null);
    if (PROFILE_ACTIONS.includes(a)) {
      const p = chosen ?? own;
      if (!p) return skip(m, "no_profile", "has no OS profile; choose one for the selection", null);
      const problem = profileProblem(p);
      if (problem) return skip(m, "bad_profile", problem, p.name);
      const fw = firmwareMismatch(p, m.firmware, m.bootFirmware);
      if (fw) return skip(m, "firmware", fw, p.name);
      profileOf.set(m.id, p.id);
      const changes = [...(p.id !== m.osProfileId ? [`OS profile: ${own?.name ?? "none"} → ${p.name}`] : []), ...changesOf(deployKind(a, p), p)];
      return row(m, to, changes, p);
    }
    if (a === "inspect") return row(m, to, changesOf("inspect", null), own);
    if (a === "release") return row(m, to, changesOf("clean", null), own);
    if (a === "retry") {
      const kind = lastFailed.get(m.id);
      if (!kind) return row(m, to, [], own);
      // A deploy is planned again from the machine's current profile (lifecycle-actions.ts retryPlan).
      if (REPLANNED_ON_RETRY.includes(kind)) {
        if (!own) return skip(m, "no_profile", "has no OS profile to deploy again", null);
        const problem = profileProblem(own);
        if (problem) return skip(m, "bad_profile", problem, own.name);
        return row(m, to, changesOf(kind === "reinstall" ? deployKind("reinstall", own) : deployKind("deploy", own), own), own);
      }
      return row(m, to, changesOf(kind, own), own);
    }
    if (a === "manage" && m.state === "enrolled") return row(m, to, [m.hasBmc ? "BMC credentials verified" : "Managed without a BMC (power by hand)"], own);
    return row(m, to, [], own);
  };
  const row = (m: Candidate, to: MachineState, changes: string[], p: OsProfile | null): PlanRow => ({
    id: m.id,
    name: m.name,
    act: true,
    reason: null,
    detail: `${STATE_LABELS[m.state]} → ${STATE_LABELS[to]}`,
    from: m.state,
    to,
    changes,
    profile: p?.name ?? null,
  });

  for (const id of ids) {
    const m = byId.get(id);
    rows.push(
      m
        ? planOne(m)
        : { id, name: `#${id}`, act: false, reason: "missing", detail: "does not exist", from: "enrolled", to: null, changes: [], profile: null },
    );
  }
  return finish(op, rows, profileOf, profiles);
}

function totals(map: Map<string, number>): PlanTotal[] {
  return [...map].map(([label, count]) => ({ label, count }));
}

function finish(op: BulkOp, rows: PlanRow[], profileOf: Map<number, number | null>, profiles: Map<number, OsProfile>): FullPlan {
  const skipCounts = new Map<SkipReason, number>();
  const transitions = new Map<string, number>();
  const changes = new Map<string, number>();
  const hash = createHash("sha256");
  hash.update(JSON.stringify(op));
  // One update for all rows (the same digest as one per row, at a fraction of the calls).
  const digestLines: string[] = [];
  let acting = 0;
  for (const r of rows) {
    // The digest: every decision, the move and the profile used (a changed profile is a different plan).
    const pid = profileOf.get(r.id);
    // The changes follow from the operation, the move and the profile (hashed with its updated_at below); their first
    // line carries what is machine-specific (a profile change, the job an abort cancels).
    digestLines.push(`\n${r.id}:${r.act ? 1 : 0}:${r.reason ?? ""}:${r.from}:${r.to ?? ""}:${pid ?? ""}:${r.changes.length}:${r.changes[0] ?? ""}`);
    if (!r.act) {
      skipCounts.set(r.reason!, (skipCounts.get(r.reason!) ?? 0) + 1);
      continue;
    }
    acting++;
    if (r.to) {
      const t = `${STATE_LABELS[r.from]} → ${STATE_LABELS[r.to]}`;
      transitions.set(t, (transitions.get(t) ?? 0) + 1);
    }
    for (const c of r.changes) changes.set(c, (changes.get(c) ?? 0) + 1);
  }
  hash.update(digestLines.join(""));
  for (const id of new Set(profileOf.values())) {
    const p = id === null ? undefined : profiles.get(id);
    if (p) hash.update(`\nprofile:${p.id}:${p.updatedAt.getTime()}`);
  }
  return {
    planId: hash.digest("hex"),
    op,
    title: titleOf(op),
    total: rows.length,
    acting,
    skipped: rows.length - acting,
    skipTotals: [...skipCounts]
      .map(([reason, count]) => ({ reason, label: SKIP_REASON_LABELS[reason], count }))
      .sort((a, b) => b.count - a.count),
    transitions: totals(transitions).sort((a, b) => b.count - a.count),
    changes: totals(changes),
    rows,
    profileOf,
  };
}

/** The plan as the API returns it: at most `limit` rows, acting ones first. */
export function publicPlan(p: FullPlan, limit: number): BulkPlan {
  const { profileOf: _profileOf, rows, ...rest } = p;
  const ordered = [...rows.filter((r) => r.act), ...rows.filter((r) => !r.act)];
  return { ...rest, rows: ordered.slice(0, limit), rowsTruncated: ordered.length > limit };
}

/**
 * The plan to execute: computed again now, and refused when the operator confirmed a different one.
 * @throws AppError PLAN_STALE, plus computePlanIn's
 */
export async function planToExecuteIn(d: Domain, selection: Selection, op: BulkOp, planId: string | undefined): Promise<FullPlan> {
  const p = await computePlanIn(d, selection, op);
  if (planId !== undefined && planId !== p.planId) throw new AppError("PLAN_STALE", STALE_PLAN_MESSAGE);
  return p;
}

/** The error code an API caller sees for a skipped machine (the same code the action itself would have refused with). */
export const SKIP_CODES: Record<SkipReason, ErrorCode> = {
  missing: "MACHINE_NOT_FOUND",
  state: "INVALID_TRANSITION",
  maintenance: "MACHINE_IN_MAINTENANCE",
  no_bmc: "BMC_NOT_CONFIGURED",
  no_profile: "VALIDATION",
  bad_profile: "VALIDATION",
  busy: "MACHINE_BUSY",
  firmware: "VALIDATION",
  unchanged: "VALIDATION",
};

/** Results of the acting machines plus the skipped ones (with the plan's reason), in the selection's order. */
export function inPlanOrder<T extends { id: number }>(p: FullPlan, acted: T[], skipped: (row: PlanRow) => T): T[] {
  const byId = new Map(acted.map((r) => [r.id, r]));
  return p.rows.map((row) => (row.act ? byId.get(row.id)! : skipped(row)));
}

/** The batch kind of a plan op, for createBatch. */
export function batchOp(kind: BatchKind, osProfileId: number | undefined): BulkOp {
  return { type: "batch", kind, ...(osProfileId !== undefined && { osProfileId }) };
}
