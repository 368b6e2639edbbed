import type { BulkResult } from "../../lib/dto";
import type { OperatorAction } from "../../lib/lifecycle";
import type { Actor, Domain } from "../context";
import { forEachMachine } from "../machines/per-machine";
import { resolveSelection, type Selection } from "../machines/selection";
import { operatorAction } from "./lifecycle-actions";

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
