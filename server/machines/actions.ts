import { inArray } from "drizzle-orm";
import type { BulkResult } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { OperatorAction } from "../../lib/lifecycle";
import type { MachineFilter } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { machines } from "../db/schema";
import { operatorAction } from "./operate";
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
  const ids = resolveSelection(d, sel);
  const names = new Map(
    d.db.select({ id: machines.id, name: machines.name }).from(machines).where(inArray(machines.id, ids)).all().map((m) => [m.id, m.name]),
  );
  const results: BulkResult[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      const name = names.get(id) ?? `#${id}`;
      try {
        const r = await operatorAction(d, id, action, { actor });
        results[i] = { id, name, ok: true, state: r.to };
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        results[i] = { id, name, ok: false, error: err.message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return results;
}
