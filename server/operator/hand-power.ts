/**
 * Power and boot device changed by an operator's hand (the operator-action layer): refused while the machine runs a
 * job, and the machine held meanwhile so that no job starts on it (orchestrator/job-state.ts withHandHold).
 */
import type { PowerResult } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { Actor, Domain } from "../context";
import { forEachMachine } from "../machines/per-machine";
import type { Selection } from "../machines/selection";
import { powerAction, setBootDevice } from "../oob/power";
import type { BootDevice, PowerAction } from "../oob/types";
import { withHandHold } from "../orchestrator/job-state";
import { inPlanOrder, planToExecute, SKIP_CODES } from "./plan";

function busyError(job: { id: number; kind: string; state: string }, what: string): AppError {
  return new AppError("MACHINE_BUSY", `${job.kind.replace(/_/g, " ")} job #${job.id} is ${job.state}; cancel it before changing the ${what} by hand`);
}

/**
 * An operator's power action on many machines with bounded concurrency; every machine gets its own outcome. A
 * machine with a queued or running job is left alone (MACHINE_BUSY): its job drives its power, and a hand-made power
 * change would break the step in flight — cancel the job first (jobs call powerAction directly). Checked for each
 * machine as its turn comes, since a slow selection can take minutes, in one transaction with holding the machine
 * (withHandHold): no job starts on it until its power action is done.
 */
export async function powerActionMany(d: Domain, ids: number[], action: PowerAction, actor: Actor, concurrency = 16): Promise<PowerResult[]> {
  const results: PowerResult[] = await forEachMachine(d, ids, concurrency, async (id) => ({
    powerState: await withHandHold(d, id, "power", (job) => busyError(job, "power"), () => powerAction(d, id, action, actor)),
  }));
  d.log.info("power action", { action, actor, machines: ids.length, failed: results.filter((r) => !r.ok).length });
  return results;
}

/** The operator's "Set boot device": refused while the machine runs a job. @throws AppError MACHINE_BUSY, BMC_* */
export async function setBootDeviceByHand(d: Domain, machineId: number, device: BootDevice, persistent: boolean, actor: Actor): Promise<void> {
  await withHandHold(d, machineId, "boot device", (job) => busyError(job, "boot device"), () => setBootDevice(d, machineId, device, persistent, actor));
}

/**
 * A power action over a table selection (explicit ids or every machine matching a filter), as planned
 * (server/operator/plan.ts): machines without a BMC or busy with a job are skipped with the plan's reason; with
 * `planId` the plan must be the one the operator confirmed. @throws AppError PLAN_STALE
 */
export async function powerSelection(d: Domain, sel: Selection, action: PowerAction, actor: Actor, planId?: string): Promise<PowerResult[]> {
  const p = planToExecute(d, sel, { type: "power", action }, planId);
  const results = await powerActionMany(d, p.rows.filter((r) => r.act).map((r) => r.id), action, actor);
  return inPlanOrder(p, results, (r) => ({ id: r.id, name: r.name, ok: false, skipped: true, error: r.detail, code: SKIP_CODES[r.reason!] }));
}
