import { and, asc, eq } from "drizzle-orm";
import type { Selection } from "../../lib/schemas";
import type { MachineFilter } from "../../lib/schemas";
import type { Domain } from "../context";
import { bytewise } from "../db/sql";
import { storeOf, type Store } from "../db/store";
import { matchesNothing, storeFilterConditions } from "./queries";

export type { Selection };

/** Resolve a selection (explicit ids, or every machine matching a filter) to ids, through the Store (either database). */
export async function resolveSelectionIn(d: Domain, sel: Selection): Promise<number[]> {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIdsIn(storeOf(d), sel.filter);
}

/** The ids of every machine matching a filter (bulk actions over "all N matching"), in name order: the list's conditions. */
export async function matchingIdsIn(store: Store, f: MachineFilter): Promise<number[]> {
  if (matchesNothing(f)) return [];
  const { machines, nics } = store.t;
  const rows = await store.db
    .select({ id: machines.id })
    .from(machines)
    .leftJoin(nics, and(eq(nics.machineId, machines.id), eq(nics.isBoot, true)))
    .where(storeFilterConditions(store.dialect, store.t, f))
    .orderBy(asc(bytewise(store.dialect, machines.name)));
  return rows.map((r) => r.id);
}
