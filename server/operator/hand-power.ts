/**
 * Power and boot device changed by an operator's hand (the operator-action layer): refused while the machine runs a
 * job, and the machine held meanwhile so that no job starts on it (orchestrator/job-state.ts withHandHold).
 */
import crypto from "node:crypto";
import { and, eq, inArray, isNotNull, sql } from "drizzle-orm";
import { storeOf } from "../db/store";
import type { PowerResult } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { Actor, Domain } from "../context";
import { forEachMachine } from "../machines/per-machine";
import { loadBmc } from "../oob/bmc-state";
import type { Selection } from "../machines/selection";
import { powerAction, setBootDevice } from "../oob/power";
import type { BootDevice, PowerAction, PowerOperation } from "../oob/types";
import { releaseHandHold, takeHandHold, withHandHold } from "../orchestrator/job-state";
import { inPlanOrder, planToExecuteIn, SKIP_CODES } from "./plan";

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
  const p = await planToExecuteIn(d, sel, { type: "power", action }, planId);
  const results = await powerActionMany(d, p.rows.filter((r) => r.act).map((r) => r.id), action, actor);
  return inPlanOrder(p, results, (r) => ({ id: r.id, name: r.name, ok: false, skipped: true, error: r.detail, code: SKIP_CODES[r.reason!] }));
}

const OPERATION_TTL_MS = 10 * 60_000;

const pendingFor = (action: PowerAction): "on" | "off" => (action === "off" || action === "soft" ? "off" : "on");

async function setPending(d: Domain, id: number, pending: "on" | "off" | null): Promise<void> {
  const { db, t } = storeOf(d);
  const [m] = await db.update(t.machines).set({ powerPending: pending }).where(eq(t.machines.id, id)).returning();
  if (m) d.bus.publish({ type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: m.maintenance, rackId: m.rackId });
}

/**
 * A power action that answers at once (issue 15): each machine is checked now (it exists, has a usable BMC, runs
 * no job, nobody else is changing its power) and held; its pending state ("powering on…") is recorded; the
 * answer goes back. The BMC command and its confirmation run in the background, bounded like powerActionMany, and
 * clear the pending state when done. End to end it costs what the waiting call costs: spacing plus one call.
 */
export async function startPowerAction(
  d: Domain,
  ids: number[],
  action: PowerAction,
  actor: Actor,
  /** Adds machines refused before (the plan's skips) to the results, in the order asked; both answers use it. */
  complete: (results: PowerResult[]) => PowerResult[] = (r) => r,
  concurrency = 16,
): Promise<{ operationId: string; results: PowerResult[] }> {
  const { db, t } = storeOf(d);
  const names = new Map((await db.select({ id: t.machines.id, name: t.machines.name }).from(t.machines).where(inArray(t.machines.id, ids))).map((m) => [m.id, m.name]));
  const accepted: number[] = [];
  const results: PowerResult[] = [];
  for (const id of ids) {
    const name = names.get(id) ?? `#${id}`;
    try {
      const h = await loadBmc(d, id);
      h.driver.power.validate(h.target);
      await takeHandHold(d, id, "power", (job) => busyError(job, "power"));
      accepted.push(id);
      const pending = pendingFor(action);
      await setPending(d, id, pending);
      results.push({ id, name, ok: true, pending });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      results.push({ id, name, ok: false, error: err.message, code: err.code });
    }
  }
  const operationId = crypto.randomUUID();
  const finished = forEachMachine(d, accepted, concurrency, async (id) => {
    try {
      return { powerState: await powerAction(d, id, action, actor) };
    } finally {
      await releaseHandHold(d, id);
      await setPending(d, id, null);
    }
  });
  const op: PowerOperation = { id: operationId, createdAt: Date.now(), done: false, results: null, finished };
  const ops = d.oob.operations;
  for (const [k, o] of ops) if (o.done && Date.now() - o.createdAt > OPERATION_TTL_MS) ops.delete(k);
  ops.set(operationId, op);
  void finished.then(
    (r) => {
      // Machines refused up front keep their refusal in the final results, in the order asked.
      const byId = new Map(r.map((x) => [x.id, x as PowerResult]));
      op.results = complete(results.map((x) => byId.get(x.id) ?? x));
      op.done = true;
      d.log.info("power action", { action, actor, machines: ids.length, failed: op.results.filter((x) => !x.ok).length, operationId });
    },
    (err) => {
      op.results = complete(results.map((x) => (x.ok ? { id: x.id, name: x.name, ok: false, error: String(err), code: "INTERNAL" } : x)));
      op.done = true;
      d.log.error("power action failed", { error: String(err), operationId });
    },
  );
  return { operationId, results: complete(results) };
}

/** Wait (up to `timeoutMs`) for a powerStart operation. @throws AppError NOT_FOUND for an unknown or expired id */
export async function waitPowerOperation(d: Domain, operationId: string, timeoutMs: number): Promise<{ done: boolean; results: PowerResult[] | null }> {
  const op = d.oob.operations.get(operationId);
  if (!op) throw new AppError("NOT_FOUND", `No power operation ${operationId} (finished operations are kept for 10 minutes)`);
  if (!op.done) await Promise.race([op.finished.catch(() => undefined), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  // Let the completion handler run if the race was won by `finished`.
  await new Promise((r) => setImmediate(r));
  return { done: op.done, results: op.results };
}

/**
 * A process that died with power actions in flight leaves pending states nobody will clear: clear them (at start,
 * and on PostgreSQL at every power sweep). SQLite: all of them (the one process just started). PostgreSQL: those
 * whose machine has no live hand hold (a live one belongs to an action still running in some process).
 */
export async function clearStalePowerPending(d: Domain): Promise<number> {
  const { db, t, dialect } = storeOf(d);
  const { machines, leases } = t;
  const orphan =
    dialect === "sqlite"
      ? isNotNull(machines.powerPending)
      : and(
          isNotNull(machines.powerPending),
          sql`NOT EXISTS (SELECT 1 FROM ${leases} WHERE ${leases.name} = 'hold:' || ${machines.id} AND ${leases.expiresAt} > clock_timestamp())`,
        );
  const cleared = await db.update(machines).set({ powerPending: null }).where(orphan).returning();
  for (const m of cleared) d.bus.publish({ type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: m.maintenance, rackId: m.rackId });
  return cleared.length;
}

/** powerStart over a table selection, as planned (like powerSelection); skipped machines keep the plan's reason. */
export async function startPowerSelection(d: Domain, sel: Selection, action: PowerAction, actor: Actor, planId?: string): Promise<{ operationId: string; results: PowerResult[] }> {
  const p = await planToExecuteIn(d, sel, { type: "power", action }, planId);
  return startPowerAction(
    d,
    p.rows.filter((r) => r.act).map((r) => r.id),
    action,
    actor,
    (acted) => inPlanOrder(p, acted, (r) => ({ id: r.id, name: r.name, ok: false, skipped: true, error: r.detail, code: SKIP_CODES[r.reason!] })),
  );
}
