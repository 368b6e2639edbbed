/**
 * The operator's lifecycle actions (the operator-action layer, above server/oob and server/orchestrator): outside
 * checks first (operatorAction: `manage` from enrolled verifies the BMC; on failure the machine stays enrolled and
 * the reason is recorded; machines without a BMC are managed without verification, their power handled by hand),
 * then performAction: the job the action needs, or the plain transition.
 */
import { and, desc, eq, inArray, notInArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { POWER_JOB_KINDS, type JobKind } from "../../lib/jobs";
import { ACTION_LABELS, nextState, STATE_LABELS, type MachineState, type OperatorAction } from "../../lib/lifecycle";
import type { Actor, Domain } from "../context";
import { transition, type TransitionResult } from "../machines/lifecycle";
import { verifyBmc } from "../oob/power";
import type { LiveEvent } from "../../lib/live-events";
import { storeOf, type Store, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { activeJob, cancelJob, startJob, startJobIn } from "../orchestrator/job-state";
import { deployParams, deployParamsFor, reinstallKind } from "../orchestrator/jobs";
import { allocatePending } from "../subnets/allocate";
import { firmwareMismatch, profileProblem, REPLANNED_ON_RETRY } from "./plan-changes";

export interface ActionResult extends TransitionResult {
  /** The job the action started or cancelled. */
  jobId?: number;
}

/** The machine's state, checked against the table before any other work. @throws AppError INVALID_TRANSITION */
async function assertAllowed(d: Domain, machineId: number, action: OperatorAction): Promise<MachineState> {
  const store = storeOf(d);
  const { machines } = store.t;
  const [m] = await store.db.select({ name: machines.name, state: machines.state }).from(machines).where(eq(machines.id, machineId)).limit(1);
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  if (!nextState(m.state, action)) {
    throw new AppError("INVALID_TRANSITION", `${m.name}: ${ACTION_LABELS[action]} is not allowed in state ${STATE_LABELS[m.state]}`);
  }
  return m.state;
}

/** Start a job for an action and report the move it made. */
async function withJob(d: Domain, machineId: number, action: OperatorAction, start: () => Promise<{ jobId: number }>): Promise<ActionResult> {
  const from = await assertAllowed(d, machineId, action);
  const { jobId } = await start();
  const store = storeOf(d);
  const { machines } = store.t;
  const [row] = await store.db.select({ state: machines.state }).from(machines).where(eq(machines.id, machineId)).limit(1);
  const to = row!.state;
  return { machineId, from, to, jobId };
}

/**
 * What a retry runs: the failed job's kind with its params, except that deploys are planned again from the machine's
 * current OS profile and network (the operator has often just fixed what failed: an image checksum, a URL, an
 * address); a reinstall stays one (`reinstallKind`), as the reinstall action plans it.
 */
async function retryPlan(
  store: Store,
  tx: StoreTx,
  machineId: number,
  last: { kind: string; params: Record<string, unknown> | null },
): Promise<{ kind: JobKind; params: Record<string, unknown> }> {
  const kind = last.kind as JobKind;
  if (!REPLANNED_ON_RETRY.includes(kind)) return { kind, params: last.params ?? {} };
  await allocatePending(store, tx, machineId);
  const p = await deployParams(store, tx, machineId);
  return { kind: kind === "reinstall" ? reinstallKind(p.kind) : p.kind, params: p.params };
}

/** The retry's job, planned and started in one transaction (addresses allocated for it are kept only with it). */
async function startRetry(d: Domain, machineId: number, last: { kind: string; params: Record<string, unknown> | null }, actor: Actor): Promise<{ jobId: number }> {
  const store = storeOf(d);
  const live: LiveEvent[] = [];
  const jobId = await store.transaction(async (tx) => {
    live.length = 0;
    const plan = await retryPlan(store, tx, machineId, last);
    return startJobIn(d, tx, { machineId, ...plan, action: "retry" }, actor, live);
  });
  for (const e of live) d.bus.publish(e);
  return { jobId };
}

/**
 * Start a deploy or reinstall with the machine's own OS profile, or with `osProfileId` chosen by the operator (then
 * recorded on the machine with the job, in one transaction: a later retry deploys it again). The profile must exist,
 * be deployable and fit the machine's firmware (plan.ts, the same checks as a bulk plan). Interfaces in mode auto
 * still without an address get one in the transaction that creates the job (server/subnets/allocate.ts).
 * @throws AppError NOT_FOUND (no such profile), VALIDATION (no profile, not deployable, firmware), CONFLICT (a subnet
 *   is full), plus startJob's
 */
async function startDeploy(d: Domain, machineId: number, action: "deploy" | "reinstall", actor: Actor, osProfileId?: number): Promise<{ jobId: number }> {
  const store = storeOf(d);
  const { machines, osProfiles } = store.t;
  const [m] = await store.db
    .select({ name: machines.name, osProfileId: machines.osProfileId, firmware: machines.firmware, bootFirmware: machines.bootFirmware })
    .from(machines)
    .where(eq(machines.id, machineId))
    .limit(1);
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  const pid = osProfileId ?? m.osProfileId;
  const profile = pid === null ? null : ((await store.db.select().from(osProfiles).where(eq(osProfiles.id, pid)).limit(1))[0] ?? null);
  if (osProfileId !== undefined && !profile) {
    throw new AppError("NOT_FOUND", `OS profile ${osProfileId} does not exist`, [{ field: "osProfileId", message: "No such profile" }]);
  }
  if (profile) {
    const problem = profileProblem(profile) ?? firmwareMismatch(profile, m.firmware, m.bootFirmware);
    if (problem) throw new AppError("VALIDATION", `${m.name}: ${problem}`, [{ field: "osProfileId", message: problem }]);
  }
  // One transaction: the allocated addresses are kept only with the job that deploys them, and the profile chosen
  // is recorded with the job.
  const live: LiveEvent[] = [];
  const jobId = await store.transaction(async (tx) => {
    live.length = 0;
    await allocatePending(store, tx, machineId);
    const p = await deployParamsFor(store, tx, machineId, profile);
    const kind = action === "reinstall" ? reinstallKind(p.kind) : p.kind;
    if (profile && profile.id !== m.osProfileId) {
      await tx.update(store.t.machines).set({ osProfileId: profile.id, updatedAt: new Date() }).where(eq(store.t.machines.id, machineId));
      const ev = await recordStoreEvent(store, tx, {
        actor,
        machineId,
        kind: "machine.updated",
        message: `OS profile set to ${profile.name} for ${ACTION_LABELS[action]}`,
        payload: { changed: ["osProfile"], osProfileId: profile.id },
      });
      live.push({ type: "event.created", event: { ...ev, machineName: m.name } });
    }
    return startJobIn(d, tx, { machineId, kind, params: p.params, action }, actor, live);
  });
  for (const e of live) d.bus.publish(e);
  return { jobId };
}

/**
 * What an operator's lifecycle action does: actions that need work on the machine start a job (which moves the
 * state with it); abort cancels the running job; the rest are plain transitions.
 * @throws AppError INVALID_TRANSITION, MACHINE_BUSY, VALIDATION (no OS profile), MACHINE_NOT_FOUND
 */
export async function performAction(d: Domain, machineId: number, action: OperatorAction, actor: Actor, reason?: string, osProfileId?: number): Promise<ActionResult> {
  if (osProfileId !== undefined && action !== "deploy" && action !== "reinstall") {
    throw new AppError("VALIDATION", "An OS profile can be chosen only for Deploy and Reinstall", [{ field: "osProfileId", message: "Not for this action" }]);
  }
  switch (action) {
    case "inspect":
      return withJob(d, machineId, action, () => startJob(d, { machineId, kind: "inspect" }, actor));
    case "release":
      return withJob(d, machineId, action, () => startJob(d, { machineId, kind: "clean", params: { wipeMode: "signatures" } }, actor));
    case "deploy":
    case "reinstall":
      return withJob(d, machineId, action, () => startDeploy(d, machineId, action, actor, osProfileId));
    case "retry": {
      const store = storeOf(d);
      const { jobs } = store.t;
      const [last] = await store.db
        .select({ kind: jobs.kind, params: jobs.params })
        .from(jobs)
        // The work that failed, not a power job that ran since.
        .where(and(eq(jobs.machineId, machineId), inArray(jobs.state, ["failed", "cancelled"]), notInArray(jobs.kind, [...POWER_JOB_KINDS])))
        .orderBy(desc(jobs.id))
        .limit(1);
      // A failure recorded without a job (e.g. from before jobs existed): the transition alone.
      if (!last) return transition(d, machineId, "retry", { actor, reason });
      return withJob(d, machineId, action, () => startRetry(d, machineId, last, actor));
    }
    case "abort": {
      const store = storeOf(d);
      const jobId = (await activeJob(store, store.db, machineId))?.id ?? null;
      if (jobId === null) return transition(d, machineId, "abort", { actor, reason });
      return withJob(d, machineId, action, async () => (await cancelJob(d, jobId, actor, reason ?? "aborted by operator"), { jobId }));
    }
    case "manage":
    case "provide":
      return transition(d, machineId, action, { actor, reason });
    default: {
      const never: never = action;
      throw new AppError("VALIDATION", `unknown action ${String(never)}`);
    }
  }
}

/**
 * The entry point for an operator's lifecycle action: outside checks first, then performAction (which starts the
 * job the action needs, or makes the plain transition).
 * @throws AppError as performAction(), plus BMC_UNREACHABLE, BMC_AUTH_FAILED, BMC_ERROR when verification fails
 */
export async function operatorAction(
  d: Domain,
  id: number,
  action: OperatorAction,
  opts: { actor: Actor; reason?: string; osProfileId?: number },
): Promise<ActionResult> {
  if (action === "manage") {
    const store = storeOf(d);
    const { machines, bmcs } = store.t;
    const [m] = await store.db
      .select({ name: machines.name, state: machines.state, hasBmc: bmcs.machineId })
      .from(machines)
      .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
      .where(eq(machines.id, id))
      .limit(1);
    if (m?.state === "enrolled" && m.hasBmc) {
      try {
        await verifyBmc(d, id, opts.actor);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        const message = `${m.name} stays enrolled: BMC verification failed: ${err.message}`;
        const ev = await recordStoreEvent(store, store.db, { actor: opts.actor, machineId: id, kind: "bmc.verify_failed", message, payload: { code: err.code } });
        d.bus.publish({ type: "event.created", event: { ...ev, machineName: m.name } });
        throw new AppError(err.code, message);
      }
    }
  }
  return performAction(d, id, action, opts.actor, opts.reason, opts.osProfileId);
}
