import type { Selection } from "../../lib/schemas";
import type { Domain } from "../context";
import { matchingIds } from "./queries";

export type { Selection };

/** Resolve a selection (explicit ids, or every machine matching a filter) to ids. */
export function resolveSelection(d: Domain, sel: Selection): number[] {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIds(d.db, sel.filter);
}
