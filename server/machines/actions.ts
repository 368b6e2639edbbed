import type { BulkResult } from "../../lib/dto";
import type { OperatorAction } from "../../lib/lifecycle";
import type { MachineFilter } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { operatorAction } from "./operate";
import { forEachMachine } from "./per-machine";
import { matchingIds } from "./queries";

export type Selection = { ids: number[] } | { filter: MachineFilter };

/** Resolve a selection (explicit ids, or every machine matching a filter) to ids. */
export function resolveSelection(d: Domain, sel: Selection): number[] {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIds(d.db, sel.filter);
}

/**
 * Apply an operator action to many machines, each in its own transaction: one machine's refusal never
 * blocks the others, and every machine gets its own outcome. Up to `concurrency` machines at once (BMC
 * verification for `manage` talks to BMCs).
 */
export async function bulkAction(d: Domain, sel: Selection, action: OperatorAction, actor: Actor, concurrency = 16): Promise<BulkResult[]> {
  const results = await forEachMachine(d, resolveSelection(d, sel), concurrency, async (id) => ({
    state: (await operatorAction(d, id, action, { actor })).to,
  }));
  return results.map((r) => (r.ok ? { id: r.id, name: r.name, ok: true, state: r.state } : { id: r.id, name: r.name, ok: false, error: r.error }));
}
