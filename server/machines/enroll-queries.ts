import { and, eq, ne, sql } from "drizzle-orm";
import type { ErrorDetail } from "../../lib/errors";
import { hot } from "../db/hot";
import type { Store, StoreDb, StoreTx, Tables } from "../db/store";
import type { Occupant, Placement } from "./placement";
import { checkPlacementWith } from "./placement";

type Q = StoreDb | StoreTx;
const ph = (name: string) => sql.placeholder(name);

/**
 * The statements of a single enrollment and of machine edits on the Store, written once with placeholders
 * (server/db/hot.ts): prepared once and run synchronously on SQLite (enrollment is a hot path of issue 15: building
 * drizzle's SQL per call cost more than the rows), built per call on PostgreSQL. Run inside the Store transaction.
 */
function prepare(store: Store) {
  const owner = (t: Tables["nics"] | Tables["bmcs"], m: Tables["machines"]) => eq(m.id, t.machineId);
  return {
    nameTaken: hot<{ id: number } | undefined>(store, "get", (db, { machines: m }) =>
      db.select({ id: m.id }).from(m).where(and(eq(m.name, ph("v")), ne(m.id, ph("self")))),
    ),
    macOwner: hot<{ name: string } | undefined>(store, "get", (db, { nics: x, machines: m }) =>
      db.select({ name: m.name }).from(x).innerJoin(m, owner(x, m)).where(and(eq(x.mac, ph("v")), ne(x.machineId, ph("self")))),
    ),
    ipOwner: hot<{ name: string } | undefined>(store, "get", (db, { nics: x, machines: m }) =>
      db.select({ name: m.name }).from(x).innerJoin(m, owner(x, m)).where(and(eq(x.ip, ph("v")), ne(x.machineId, ph("self")))),
    ),
    ipAsBmc: hot<{ name: string } | undefined>(store, "get", (db, { bmcs: x, machines: m }) =>
      db.select({ name: m.name }).from(x).innerJoin(m, owner(x, m)).where(and(eq(x.address, ph("v")), ne(x.driver, "fake"))),
    ),
    bmcOwner: hot<{ name: string } | undefined>(store, "get", (db, { bmcs: x, machines: m }) =>
      db
        .select({ name: m.name })
        .from(x)
        .innerJoin(m, owner(x, m))
        .where(and(eq(x.address, ph("v")), eq(x.port, ph("port")), ne(x.driver, "fake"), ne(x.machineId, ph("self")))),
    ),
    bmcAsIp: hot<{ name: string } | undefined>(store, "get", (db, { nics: x, machines: m }) => db.select({ name: m.name }).from(x).innerJoin(m, owner(x, m)).where(eq(x.ip, ph("v")))),
    rack: hot<{ name: string; heightU: number } | undefined>(store, "get", (db, { racks }) =>
      db.select({ name: racks.name, heightU: racks.heightU }).from(racks).where(eq(racks.id, ph("id"))),
    ),
    clash: hot<Occupant | undefined>(store, "get", (db, { machines: m }) =>
      db
        .select({ name: m.name, u: m.uPosition, h: m.uHeight })
        .from(m)
        .where(
          and(
            eq(m.rackId, ph("rackId")),
            ne(m.id, ph("exclude")),
            // Ranges [u, u+h-1] and [pos, top] intersect.
            sql`${m.uPosition} <= ${ph("top")} AND ${m.uPosition} + ${m.uHeight} - 1 >= ${ph("bottom")}`,
          ),
        ),
    ),
    profile: hot<{ id: number } | undefined>(store, "get", (db, { osProfiles }) => db.select({ id: osProfiles.id }).from(osProfiles).where(eq(osProfiles.id, ph("id")))),
  };
}

const perStore = new WeakMap<Store, ReturnType<typeof prepare>>();

export function enrollQueries(store: Store) {
  let q = perStore.get(store);
  if (!q) perStore.set(store, (q = prepare(store)));
  return q;
}

/**
 * Every clash of `v` with other machines (name, MAC, IP, BMC address:port, an IP used both as a machine's IP and as
 * a BMC address), with the field it concerns: the Store twin of enroll.ts `uniqueProblems` (same messages).
 */
export async function storeUniqueProblems(
  store: Store,
  db: Q,
  v: { name?: string | null; mac?: string | null; ip?: string | null; bmc?: { driver: string; address: string; port: number } | null },
  excludeMachineId?: number,
): Promise<ErrorDetail[]> {
  const q = enrollQueries(store);
  const self = excludeMachineId ?? 0;
  const errors: ErrorDetail[] = [];
  if (v.name && (await q.nameTaken(db, { v: v.name, self }))) errors.push({ field: "name", message: `A machine named ${v.name} already exists` });
  if (v.mac) {
    const hit = await q.macOwner(db, { v: v.mac, self });
    if (hit) errors.push({ field: "bootMac", message: `MAC ${v.mac} belongs to ${hit.name}` });
  }
  if (v.ip) {
    const hit = await q.ipOwner(db, { v: v.ip, self });
    if (hit) errors.push({ field: "ip", message: `IP ${v.ip} belongs to ${hit.name}` });
    const bmc = await q.ipAsBmc(db, { v: v.ip });
    if (bmc) errors.push({ field: "ip", message: `IP ${v.ip} is the BMC address of ${bmc.name}` });
  }
  if (v.bmc && v.bmc.driver !== "fake") {
    const address = v.bmc.address.toLowerCase();
    const hit = await q.bmcOwner(db, { v: address, port: v.bmc.port, self });
    if (hit) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address}:${v.bmc.port} belongs to ${hit.name}'s BMC` });
    const host = await q.bmcAsIp(db, { v: address });
    if (host) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address} is the IP of ${host.name}` });
  }
  return errors;
}

/** placement.ts `checkPlacementWith` over the Store's lookups. @throws AppError RACK_NOT_FOUND, VALIDATION, U_OUT_OF_RANGE, U_OVERLAP */
export async function storeCheckPlacement(store: Store, db: Q, p: Placement, excludeMachineId?: number): Promise<void> {
  if (p.rackId == null) return checkPlacementWith(p, () => undefined, () => undefined);
  const q = enrollQueries(store);
  const rack = await q.rack(db, { id: p.rackId });
  const clash =
    rack && p.uPosition != null
      ? await q.clash(db, { rackId: p.rackId, exclude: excludeMachineId ?? 0, bottom: p.uPosition, top: p.uPosition + p.uHeight - 1 })
      : undefined;
  checkPlacementWith(p, () => rack, () => clash);
}
