import { eq, inArray } from "drizzle-orm";
import type { BatchCreated } from "../../lib/batches";
import type { BulkResult } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { OperatorAction } from "../../lib/lifecycle";
import type { BulkOp } from "../../lib/plan";
import type { Actor, Domain } from "../context";
import { storeOf } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { forEachMachine } from "../machines/per-machine";
import type { Selection } from "../machines/selection";
import { createBatch } from "../orchestrator/batches";
import type { batchCreateSchema } from "../../lib/batches";
import type { z } from "zod";
import { operatorAction } from "./lifecycle-actions";
import { inPlanOrder, planToExecuteIn } from "./plan";
import type { PlanRow } from "../../lib/plan";

/** A machine the plan skipped, as a bulk result (the same reason the plan showed). */
const skippedResult = (r: PlanRow): BulkResult => ({ id: r.id, name: r.name, ok: false, skipped: true, error: r.detail });

/**
 * Apply an operator action to many machines as planned (server/operator/plan.ts): the machines the plan skips are
 * reported with its reason and never touched; each acting machine runs in its own transaction, so one machine's
 * refusal never blocks the others. With `planId` the plan must be the one the operator confirmed (else PLAN_STALE).
 * Up to `concurrency` machines at once (BMC verification for `manage` talks to BMCs).
 */
export async function bulkAction(
  d: Domain,
  sel: Selection,
  action: OperatorAction,
  actor: Actor,
  opts: { planId?: string; osProfileId?: number } = {},
  concurrency = 16,
): Promise<BulkResult[]> {
  const op: BulkOp = { type: "action", action, ...(opts.osProfileId !== undefined && { osProfileId: opts.osProfileId }) };
  const p = await planToExecuteIn(d, sel, op, opts.planId);
  const acting = p.rows.filter((r) => r.act).map((r) => r.id);
  const results = await forEachMachine(d, acting, concurrency, async (id) => ({
    state: (await operatorAction(d, id, action, { actor, osProfileId: p.profileOf.get(id) ?? undefined })).to,
  }));
  const acted = results.map((r): BulkResult => (r.ok ? { id: r.id, name: r.name, ok: true, state: r.state } : { id: r.id, name: r.name, ok: false, error: r.error }));
  return inPlanOrder(p, acted, skippedResult);
}

/**
 * Start a batch as planned: the acting machines of the plan (with the OS profile chosen for deploy and reinstall),
 * the skipped ones kept on the batch with the plan's reasons. The typed count must be the number that acts.
 * @throws AppError PLAN_STALE, VALIDATION, plus createBatch's
 */
export async function startBatch(d: Domain, input: z.output<typeof batchCreateSchema>, actor: Actor): Promise<BatchCreated> {
  const op: BulkOp = { type: "batch", kind: input.kind, ...(input.osProfileId !== undefined && { osProfileId: input.osProfileId }) };
  const p = await planToExecuteIn(d, input.selection, op, input.planId);
  if (!p.total) throw new AppError("VALIDATION", "The selection is empty");
  if (!p.acting) {
    const first = p.rows[0]!;
    throw new AppError("VALIDATION", `No machine in the selection can take "${p.title}": ${first.name} ${first.detail}`);
  }
  return createBatch(
    d,
    input,
    actor,
    {
      acting: p.rows.filter((r) => r.act).map((r) => ({ machineId: r.id, osProfileId: p.profileOf.get(r.id) ?? null })),
      skipped: p.rows.filter((r) => !r.act).map((r) => ({ machineId: r.id, name: r.name, error: r.detail })),
    },
  );
}

/**
 * The bulk "Set OS profile": every acting machine of the plan gets the profile (or none), in one transaction, one
 * event per machine. @throws AppError PLAN_STALE, NOT_FOUND (no such profile)
 */
export async function setOsProfile(d: Domain, sel: Selection, osProfileId: number | null, actor: Actor, planId?: string): Promise<BulkResult[]> {
  const p = await planToExecuteIn(d, sel, { type: "setProfile", osProfileId }, planId);
  const acting = p.rows.filter((r) => r.act);
  const store = storeOf(d);
  const { machines, osProfiles } = store.t;
  const [profile] = osProfileId === null ? [] : await store.db.select({ name: osProfiles.name }).from(osProfiles).where(eq(osProfiles.id, osProfileId)).limit(1);
  // The plan refused an unknown profile (NOT_FOUND); one deleted since is refused here, before anything is written.
  if (osProfileId !== null && !profile) throw new AppError("NOT_FOUND", `OS profile ${osProfileId} does not exist`);
  const name = profile?.name ?? null;
  const events = await store.transaction(async (tx) => {
    const now = new Date();
    const ids = acting.map((r) => r.id);
    if (ids.length) await tx.update(machines).set({ osProfileId, updatedAt: now }).where(inArray(machines.id, ids));
    const out = [];
    for (const r of acting) {
      out.push(
        await recordStoreEvent(store, tx, {
          actor,
          machineId: r.id,
          kind: "machine.updated",
          message: `${r.name}: ${r.detail}`,
          payload: { changed: ["osProfile"], osProfileId },
        }),
      );
    }
    return out;
  });
  for (const [i, ev] of events.entries()) d.bus.publish({ type: "event.created", event: { ...ev, machineName: acting[i]!.name } });
  if (acting.length) d.bus.publish({ type: "machines.bulk", count: acting.length });
  return inPlanOrder(p, acting.map((r): BulkResult => ({ id: r.id, name: r.name, ok: true, profile: name })), skippedResult);
}
