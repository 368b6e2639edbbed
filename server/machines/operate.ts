/**
 * Operator actions that need the outside world before anything moves. Today: `manage` from enrolled
 * verifies the BMC (it must answer with the stored credentials); on failure the machine stays enrolled and the
 * reason is recorded. Machines without a BMC are managed without verification (their power is handled by hand).
 */
import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { OperatorAction } from "../../lib/lifecycle";
import type { Actor, Domain } from "../context";
import { bmcs, machines } from "../db/schema";
import { recordEvent } from "../events/audit";
import { verifyBmc } from "../oob/power";
import { performAction, type ActionResult } from "../orchestrator/actions";

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
