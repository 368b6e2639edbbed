/**
 * Subnets: create, change, delete (refused while addresses are allocated), list with use, one subnet's holders. On the
 * Store (either database). On PostgreSQL, changes take a transaction-level advisory lock first (the name, overlap and
 * provisioning checks read other rows, which a row lock cannot cover), and the changed subnet's row is locked as
 * allocation locks it (allocate.ts StoreAllocator), so an address is never handed out from a subnet being changed.
 */
import { and, asc, count, eq, gt, ne, or, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { addrKey, assignableCount, parseAddr, parseCidr, type SubnetCreate } from "../../lib/subnets";
import type { Actor, Domain } from "../context";
import type { Subnet } from "../db/schema";
import { forUpdate } from "../db/sql";
import { storeOf, type Store, type StoreDb, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { loadNetbootSettings } from "../netboot/settings";
import { planOf } from "./allocate";

type SubnetUpdate = SubnetCreate & { id: number };

function columns(input: SubnetCreate) {
  return {
    name: input.name,
    cidr: input.cidr,
    family: parseCidr(input.cidr)!.family,
    gateway: input.gateway ?? null,
    dns: input.dns,
    vlanId: input.vlanId ?? null,
    reserved: input.reserved,
    dynamicStart: input.dynamic?.start ?? null,
    dynamicEnd: input.dynamic?.end ?? null,
    provisioning: input.provisioning,
  };
}

/** Serialise subnet changes on PostgreSQL (SQLite's BEGIN IMMEDIATE already does). */
async function lockSubnets(store: Store, tx: StoreTx): Promise<void> {
  if (store.dialect === "postgres") await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('rackhand:subnets'))`);
}

async function checkFree(store: Store, tx: StoreTx, input: SubnetCreate, exceptId?: number): Promise<void> {
  const { subnets } = store.t;
  const not = exceptId ? ne(subnets.id, exceptId) : undefined;
  const [name] = await tx.select({ id: subnets.id }).from(subnets).where(and(eq(subnets.name, input.name), not)).limit(1);
  if (name) throw new AppError("CONFLICT", `A subnet named ${input.name} already exists`, [{ field: "name", message: "Name taken" }]);
  const c = parseCidr(input.cidr)!;
  // Overlap with another subnet of the family: an address must belong to one subnet only.
  for (const o of await tx.select({ name: subnets.name, cidr: subnets.cidr }).from(subnets).where(and(eq(subnets.family, c.family), not))) {
    const oc = parseCidr(o.cidr);
    if (!oc) continue;
    const lastC = c.network | ((1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix)) - 1n);
    const lastO = oc.network | ((1n << BigInt((oc.family === 4 ? 32 : 128) - oc.prefix)) - 1n);
    if (c.network <= lastO && oc.network <= lastC) {
      throw new AppError("CONFLICT", `${input.cidr} overlaps subnet ${o.name} (${o.cidr})`, [{ field: "cidr", message: `Overlaps ${o.name}` }]);
    }
  }
  if (input.provisioning) {
    const server = (await loadNetbootSettings(store, tx)).serverAddress;
    if (c.family !== 4 || !(parseAddr(server)!.n >= c.network && parseAddr(server)!.n <= c.network + (1n << BigInt(32 - c.prefix)) - 1n)) {
      throw new AppError("VALIDATION", `The provisioning subnet must contain the netboot server address ${server} (Settings)`, [{ field: "provisioning", message: `Does not contain ${server}` }]);
    }
    const [p] = await tx.select({ name: subnets.name }).from(subnets).where(and(eq(subnets.provisioning, true), not)).limit(1);
    if (p) throw new AppError("CONFLICT", `${p.name} is already the provisioning subnet`, [{ field: "provisioning", message: `${p.name} is the provisioning subnet` }]);
  }
}

/** @throws AppError CONFLICT (name, overlap, second provisioning subnet) */
export async function createSubnet(d: Domain, input: SubnetCreate, actor: Actor): Promise<{ id: number }> {
  const store = storeOf(d);
  const { subnets } = store.t;
  const row = await store.transaction(async (tx) => {
    await lockSubnets(store, tx);
    await checkFree(store, tx, input);
    const now = new Date();
    const [r] = await tx
      .insert(subnets)
      .values({ ...columns(input), createdAt: now, updatedAt: now })
      .returning();
    await recordStoreEvent(store, tx, { actor, kind: "subnet.created", message: `Created subnet ${r!.name} (${r!.cidr})`, payload: { subnetId: r!.id } });
    return r!;
  });
  if (row.provisioning) d.bus.publish({ type: "netboot.changed" });
  return { id: row.id };
}

/**
 * Change a subnet. Its CIDR, reserved and dynamic ranges and gateway may change only so that every address already
 * allocated stays valid (inside, not reserved, not dynamic, not the gateway). @throws AppError NOT_FOUND, CONFLICT
 */
export async function updateSubnet(d: Domain, input: SubnetUpdate, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { subnets, ipAllocations, machines } = store.t;
  const was = await store.transaction(async (tx) => {
    await lockSubnets(store, tx);
    const [old] = await forUpdate(store.dialect, tx.select().from(subnets).where(eq(subnets.id, input.id)).limit(1));
    if (!old) throw new AppError("NOT_FOUND", `Subnet ${input.id} does not exist`);
    await checkFree(store, tx, input, old.id);
    const next = { ...old, ...columns(input) };
    const plan = planOf(next);
    const allocated = await tx
      .select({ address: ipAllocations.address, mode: ipAllocations.mode, name: machines.name })
      .from(ipAllocations)
      .innerJoin(machines, eq(machines.id, ipAllocations.machineId))
      .where(eq(ipAllocations.subnetId, old.id));
    if (parseCidr(input.cidr)!.family !== old.family && allocated.length) {
      throw new AppError("CONFLICT", `Subnet ${old.name} has ${allocated.length} allocated address(es): it cannot change family`, [{ field: "cidr", message: "Addresses are allocated" }]);
    }
    const bad: string[] = [];
    for (const a of allocated) {
      const n = parseAddr(a.address)!.n;
      const inside = n >= plan.cidr.network && n <= (plan.cidr.network | ((1n << BigInt((plan.cidr.family === 4 ? 32 : 128) - plan.cidr.prefix)) - 1n));
      const excluded = plan.excluded.some((r) => n >= r.start && n <= r.end);
      if (!inside || excluded) bad.push(`${a.address} (${a.name})`);
      if (bad.length >= 5) break;
    }
    if (bad.length) {
      throw new AppError("CONFLICT", `Subnet ${old.name}: the change would leave allocated addresses outside, reserved or dynamic: ${bad.join(", ")}`, [
        { field: "cidr", message: "Allocated addresses would become invalid" },
      ]);
    }
    await tx.update(subnets).set({ ...columns(input), updatedAt: new Date() }).where(eq(subnets.id, old.id));
    await recordStoreEvent(store, tx, { actor, kind: "subnet.updated", message: `Updated subnet ${input.name} (${input.cidr})`, payload: { subnetId: old.id } });
    return old;
  });
  if (was.provisioning || input.provisioning) d.bus.publish({ type: "netboot.changed" });
}

/** @throws AppError NOT_FOUND, CONFLICT (addresses allocated or interfaces still set to the subnet) */
export async function deleteSubnet(d: Domain, id: number, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { subnets, ipAllocations, nics, nicLinks } = store.t;
  const was = await store.transaction(async (tx) => {
    await lockSubnets(store, tx);
    const [s] = await forUpdate(store.dialect, tx.select().from(subnets).where(eq(subnets.id, id)).limit(1));
    if (!s) throw new AppError("NOT_FOUND", `Subnet ${id} does not exist`);
    const used = Number((await tx.select({ n: count() }).from(ipAllocations).where(eq(ipAllocations.subnetId, id)))[0]!.n);
    if (used) throw new AppError("CONFLICT", `Subnet ${s.name} has ${used} allocated address(es): release them first`);
    const refs =
      Number((await tx.select({ n: count() }).from(nics).where(or(eq(nics.subnetId, id), eq(nics.subnet6Id, id))))[0]!.n) +
      Number((await tx.select({ n: count() }).from(nicLinks).where(or(eq(nicLinks.subnetId, id), eq(nicLinks.subnet6Id, id))))[0]!.n);
    if (refs) throw new AppError("CONFLICT", `Subnet ${s.name} is the subnet of ${refs} interface(s): change them first`);
    await tx.delete(subnets).where(eq(subnets.id, id));
    await recordStoreEvent(store, tx, { actor, kind: "subnet.deleted", message: `Deleted subnet ${s.name} (${s.cidr})`, payload: { subnetId: id } });
    return s;
  });
  if (was.provisioning) d.bus.publish({ type: "netboot.changed" });
}

function dto(s: Subnet) {
  return {
    id: s.id,
    name: s.name,
    cidr: s.cidr,
    family: s.family,
    gateway: s.gateway,
    dns: s.dns,
    vlanId: s.vlanId,
    reserved: s.reserved,
    dynamic: s.dynamicStart && s.dynamicEnd ? { start: s.dynamicStart, end: s.dynamicEnd } : null,
    provisioning: s.provisioning,
  };
}

/** Every subnet with its use: allocated count, and what is left to hand out (text: an IPv6 /64 exceeds 2^53). */
export async function listSubnets(store: Store, db: StoreDb | StoreTx = store.db) {
  const { subnets, ipAllocations } = store.t;
  const used = new Map((await db.select({ id: ipAllocations.subnetId, n: count() }).from(ipAllocations).groupBy(ipAllocations.subnetId)).map((r) => [r.id, Number(r.n)]));
  return (await db.select().from(subnets).orderBy(asc(subnets.name))).map((s) => {
      const allocated = used.get(s.id) ?? 0;
      const assignable = assignableCount(planOf(s));
      const free = assignable - BigInt(allocated);
      return { ...dto(s), allocated, assignable: assignable.toString(), free: (free < 0n ? 0n : free).toString() };
    });
}

/**
 * One subnet and a page of its allocations in address order (keyset: `after` is the last address of the previous
 * page), each with the machine and interface holding it.
 */
export async function getSubnet(store: Store, id: number, opts: { after?: string | null; limit?: number } = {}) {
  const db = store.db;
  const { subnets, ipAllocations, machines, nics, nicLinks } = store.t;
  const [s] = await db.select().from(subnets).where(eq(subnets.id, id)).limit(1);
  if (!s) throw new AppError("NOT_FOUND", `Subnet ${id} does not exist`);
  const limit = Math.min(opts.limit ?? 200, 1000);
  const after = opts.after ? parseAddr(opts.after) : null;
  const rows = await db
    .select({
      address: ipAllocations.address,
      mode: ipAllocations.mode,
      machineId: ipAllocations.machineId,
      machineName: machines.name,
      machineState: machines.state,
      nic: nics.ifname,
      mac: nics.mac,
      link: nicLinks.ifname,
      sortKey: ipAllocations.sortKey,
    })
    .from(ipAllocations)
    .innerJoin(machines, eq(machines.id, ipAllocations.machineId))
    .leftJoin(nics, eq(nics.id, ipAllocations.nicId))
    .leftJoin(nicLinks, eq(nicLinks.id, ipAllocations.linkId))
    .where(and(eq(ipAllocations.subnetId, id), after ? gt(ipAllocations.sortKey, addrKey(after.n)) : undefined))
    .orderBy(asc(ipAllocations.sortKey))
    .limit(limit + 1);
  const allocated = Number((await db.select({ n: count() }).from(ipAllocations).where(eq(ipAllocations.subnetId, id)))[0]!.n);
  const assignable = assignableCount(planOf(s));
  const free = assignable - BigInt(allocated);
  return {
    ...dto(s),
    allocated,
    assignable: assignable.toString(),
    free: (free < 0n ? 0n : free).toString(),
    allocations: rows.slice(0, limit).map((r) => ({
      address: r.address,
      mode: r.mode,
      machineId: r.machineId,
      machineName: r.machineName,
      machineState: r.machineState,
      interface: r.nic ?? r.link ?? null,
      mac: r.mac ?? null,
    })),
    more: rows.length > limit,
  };
}

