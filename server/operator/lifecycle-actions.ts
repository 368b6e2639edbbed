/**
 * The operator's lifecycle actions (the operator-action layer, above server/oob and server/orchestrator): outside
 * checks first (operatorAction: `manage` from enrolled verifies the BMC; on failure the machine stays enrolled and
 * the reason is recorded; machines without a BMC are managed without verification, their power handled by hand),
 * then performAction: the job the action needs, or the plain transition.
 */
import { and, desc, eq, inArray, notInArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { POWER_JOB_KINDS, type JobKind } from "../../lib/jobs";
import { nextState, STATE_LABELS, type MachineState, type OperatorAction } from "../../lib/lifecycle";
import type { Actor, Domain } from "../context";
import { bmcs, jobs, machines } from "../db/schema";
import { recordEvent } from "../events/audit";
import { transition, type TransitionResult } from "../machines/lifecycle";
import { verifyBmc } from "../oob/power";
import { activeJob, cancelJob, startJob } from "../orchestrator/job-state";
import { deployParams, reinstallKind } from "../orchestrator/jobs";

export interface ActionResult extends TransitionResult {
  /** The job the action started or cancelled. */
  jobId?: number;
}

/** The machine's state, checked against the table before any other work. @throws AppError INVALID_TRANSITION */
function assertAllowed(d: Domain, machineId: number, action: OperatorAction): MachineState {
  const m = d.db.select({ name: machines.name, state: machines.state }).from(machines).where(eq(machines.id, machineId)).get();
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  if (!nextState(m.state, action)) {
    throw new AppError("INVALID_TRANSITION", `${m.name}: "${action}" is not allowed in state ${STATE_LABELS[m.state]}`);
  }
  return m.state;
}

/** Start a job for an action and report the move it made. */
function withJob(d: Domain, machineId: number, action: OperatorAction, start: () => { jobId: number }): ActionResult {
  const from = assertAllowed(d, machineId, action);
  const { jobId } = start();
  const to = d.db.select({ state: machines.state }).from(machines).where(eq(machines.id, machineId)).get()!.state;
  return { machineId, from, to, jobId };
}

/**
 * What a retry runs: the failed job's kind with its params, except that deploys are planned again from the machine's
 * current OS profile and network (the operator has often just fixed what failed: an image checksum, a URL, an
 * address); a reinstall stays one (`reinstallKind`), as the reinstall action plans it.
 */
function retryPlan(d: Domain, machineId: number, last: { kind: string; params: Record<string, unknown> | null }): { kind: JobKind; params: Record<string, unknown> } {
  const kind = last.kind as JobKind;
  if (kind !== "deploy_image" && kind !== "deploy_installer" && kind !== "reinstall") return { kind, params: last.params ?? {} };
  const p = deployParams(d.db, machineId);
  return { kind: kind === "reinstall" ? reinstallKind(p.kind) : p.kind, params: p.params };
}

/**
 * What an operator's lifecycle action does: actions that need work on the machine start a job (which moves the
 * state with it); abort cancels the running job; the rest are plain transitions.
 * @throws AppError INVALID_TRANSITION, MACHINE_BUSY, VALIDATION (no OS profile), MACHINE_NOT_FOUND
 */
export function performAction(d: Domain, machineId: number, action: OperatorAction, actor: Actor, reason?: string): ActionResult {
  switch (action) {
    case "inspect":
      return withJob(d, machineId, action, () => startJob(d, { machineId, kind: "inspect" }, actor));
    case "release":
      return withJob(d, machineId, action, () => startJob(d, { machineId, kind: "clean", params: { wipeMode: "signatures" } }, actor));
    case "deploy":
      return withJob(d, machineId, action, () => {
        const p = deployParams(d.db, machineId);
        return startJob(d, { machineId, kind: p.kind, params: p.params }, actor);
      });
    case "reinstall":
      return withJob(d, machineId, action, () => {
        const p = deployParams(d.db, machineId);
        return startJob(d, { machineId, kind: reinstallKind(p.kind), params: p.params, action: "reinstall" }, actor);
      });
    case "retry": {
      const last = d.db
        .select({ kind: jobs.kind, params: jobs.params })
        .from(jobs)
        // The work that failed, not a power job that ran since.
        .where(and(eq(jobs.machineId, machineId), inArray(jobs.state, ["failed", "cancelled"]), notInArray(jobs.kind, [...POWER_JOB_KINDS])))
        .orderBy(desc(jobs.id))
        .get();
      // A failure recorded without a job (e.g. from before jobs existed): the transition alone.
      if (!last) return transition(d, machineId, "retry", { actor, reason });
      return withJob(d, machineId, action, () => startJob(d, { machineId, ...retryPlan(d, machineId, last), action: "retry" }, actor));
    }
    case "abort": {
      const jobId = activeJob(d.db, machineId)?.id ?? null;
      if (jobId === null) return transition(d, machineId, "abort", { actor, reason });
      return withJob(d, machineId, action, () => (cancelJob(d, jobId, actor, reason ?? "aborted by operator"), { jobId }));
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
export async function operatorAction(d: Domain, id: number, action: OperatorAction, opts: { actor: Actor; reason?: string }): Promise<ActionResult> {
  if (action === "manage") {
    const m = d.db
      .select({ name: machines.name, state: machines.state, hasBmc: bmcs.machineId })
      .from(machines)
      .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
      .where(eq(machines.id, id))
      .get();
    if (m?.state === "enrolled" && m.hasBmc) {
      try {
        await verifyBmc(d, id, opts.actor);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        const message = `${m.name} stays enrolled: BMC verification failed: ${err.message}`;
        const ev = recordEvent(d.db, { actor: opts.actor, machineId: id, kind: "bmc.verify_failed", message, payload: { code: err.code } });
        d.bus.publish({ type: "event.created", event: { ...ev, machineName: m.name } });
        throw new AppError(err.code, message);
      }
    }
  }
  return performAction(d, id, action, opts.actor, opts.reason);
}
