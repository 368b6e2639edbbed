import { and, asc, eq, inArray, or, sql, type SQL } from "drizzle-orm";
import type { Selection } from "../../lib/schemas";
import type { MachineFilter } from "../../lib/schemas";
import { normalizeMac } from "../../lib/net";
import type { Domain } from "../context";
import { escapeLike, jsonPathArrayLength, jsonPathNumber, jsonPathText, likeCi } from "../db/sql";
import { storeOf, type Store } from "../db/store";
import { matchingIds } from "./queries";

export type { Selection };

/** Resolve a selection (explicit ids, or every machine matching a filter) to ids. Synchronous on SQLite. */
export function resolveSelection(d: Domain, sel: Selection): number[] {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIds(d.db, sel.filter);
}

/** resolveSelection through the Store (either database): the ids of a filter in name order. */
export async function resolveSelectionIn(d: Domain, sel: Selection): Promise<number[]> {
  return "ids" in sel ? [...new Set(sel.ids)] : matchingIdsIn(storeOf(d), sel.filter);
}

/** matchingIds (server/machines/queries.ts) through the Store: the same conditions, in either dialect. */
export async function matchingIdsIn(store: Store, f: MachineFilter): Promise<number[]> {
  const { machines, nics } = store.t;
  const d = store.dialect;
  const conds: (SQL | undefined)[] = [];
  // Text no stored value can hold (PostgreSQL's text cannot hold NUL) matches nothing, rather than failing.
  const impossible = [f.q, f.cpuModel].some((t) => t !== undefined && t.includes("\u0000"));
  if (impossible) return [];
  if (f.states?.length) conds.push(inArray(machines.state, f.states));
  if (f.rackId) conds.push(eq(machines.rackId, f.rackId));
  if (f.power) conds.push(eq(machines.powerState, f.power));
  if (f.maintenance !== undefined) conds.push(eq(machines.maintenance, f.maintenance));
  if (f.q) {
    const mac = normalizeMac(f.q);
    const partialMac = /^[0-9a-f]{2}([-:][0-9a-f]{1,2})+[-:]?$/i.test(f.q) ? f.q.toLowerCase().replaceAll("-", ":") : null;
    const pat = `%${escapeLike(f.q.toLowerCase())}%`;
    conds.push(
      or(
        likeCi(d, machines.name, pat),
        likeCi(d, nics.ip, pat),
        mac ? eq(nics.mac, mac) : likeCi(d, nics.mac, partialMac ? `%${escapeLike(partialMac)}%` : pat),
      ),
    );
  }
  // Inventory filters read the agent's JSON; machines without an inventory never match them.
  if (f.minMemoryGiB !== undefined) conds.push(sql`${jsonPathNumber(d, machines.inventory, ["memoryBytes"])} >= ${Math.round(f.minMemoryGiB * 2 ** 30)}`);
  if (f.minDisks !== undefined) conds.push(sql`${jsonPathArrayLength(d, machines.inventory, ["disks"])} >= ${f.minDisks}`);
  if (f.cpuModel) conds.push(likeCi(d, jsonPathText(d, machines.inventory, ["cpu", "model"]), `%${escapeLike(f.cpuModel.toLowerCase())}%`));
  const rows = await store.db
    .select({ id: machines.id })
    .from(machines)
    .leftJoin(nics, and(eq(nics.machineId, machines.id), eq(nics.isBoot, true)))
    .where(and(...conds))
    .orderBy(asc(machines.name));
  return rows.map((r) => r.id);
}
