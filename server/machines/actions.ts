import { eq, inArray } from "drizzle-orm";
import type { BulkResult } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { OperatorAction } from "../../lib/lifecycle";
import type { MachineFilter } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { machines } from "../db/schema";
import { performAction } from "../orchestrator/actions";
import { matchingIds } from "./queries";

export type Selection = { ids: number[] } | { filter: MachineFilter };

/** Resolve a selection (explicit ids, or every machine matching a filter) to ids. */
export function resolveSelection(d: Domain, sel: Selection): number[] {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIds(d.db, sel.filter);
}

/**
 * Apply an operator action to many machines, each in its own transaction: one machine's refusal never
 * blocks the others, and every machine gets its own outcome.
 */
export function bulkAction(d: Domain, sel: Selection, action: OperatorAction, actor: Actor): BulkResult[] {
  const ids = resolveSelection(d, sel);
  const names = new Map(
    d.db.select({ id: machines.id, name: machines.name }).from(machines).where(inArray(machines.id, ids)).all().map((m) => [m.id, m.name]),
  );
  return ids.map((id) => {
    const name = names.get(id) ?? `#${id}`;
    try {
      performAction(d, id, action, actor);
      const state = d.db.select({ state: machines.state }).from(machines).where(eq(machines.id, id)).get()?.state;
      return { id, name, ok: true, state };
    } catch (err) {
      if (err instanceof AppError) return { id, name, ok: false, error: err.message };
      throw err;
    }
  });
}
