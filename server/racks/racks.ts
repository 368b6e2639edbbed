import { and, asc, count, eq, isNotNull, sql } from "drizzle-orm";
import type { RackElevation, RackSummary } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { z } from "zod";
import type { rackCreateSchema, rackUpdateSchema } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { forUpdate } from "../db/sql";
import { storeOf, type Store, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { uniqueGuarded } from "../machines/unique";

type RackCreate = z.output<typeof rackCreateSchema>;
type RackUpdate = z.output<typeof rackUpdateSchema>;

async function checkNameFree(store: Store, tx: StoreTx, name: string, exceptId?: number): Promise<void> {
  const { racks } = store.t;
  const [hit] = await tx.select({ id: racks.id }).from(racks).where(eq(racks.name, name)).limit(1);
  if (hit && hit.id !== exceptId) {
    throw new AppError("CONFLICT", `A rack named ${name} already exists`, [{ field: "name", message: "Name taken" }]);
  }
}

/** @throws AppError CONFLICT */
export async function createRack(d: Domain, input: RackCreate, actor: Actor): Promise<{ id: number }> {
  const store = storeOf(d);
  const { racks } = store.t;
  const rack = await uniqueGuarded(store, () =>
    store.transaction(async (tx) => {
      await checkNameFree(store, tx, input.name);
      const now = new Date();
      const [r] = await tx
        .insert(racks)
        .values({ name: input.name, site: input.site ?? null, row: input.row ?? null, heightU: input.heightU, createdAt: now, updatedAt: now })
        .returning();
      await recordStoreEvent(store, tx, { actor, kind: "rack.created", message: `Created rack ${r!.name} (${r!.heightU}U)`, payload: { rackId: r!.id } });
      return r!;
    }),
  );
  d.bus.publish({ type: "rack.changed", rackId: rack.id });
  return { id: rack.id };
}

/** Rename, move or resize a rack. Shrinking below an installed machine is refused. @throws AppError RACK_NOT_FOUND, CONFLICT, U_OUT_OF_RANGE */
export async function updateRack(d: Domain, input: RackUpdate, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { racks, machines } = store.t;
  await uniqueGuarded(store, () =>
    store.transaction(async (tx) => {
      // Locked on PostgreSQL: a machine placed meanwhile checks the rack's height under the same lock.
      const [r] = await forUpdate(store.dialect, tx.select().from(racks).where(eq(racks.id, input.id)).limit(1));
      if (!r) throw new AppError("RACK_NOT_FOUND", `Rack ${input.id} does not exist`);
      if (input.name !== undefined) await checkNameFree(store, tx, input.name, r.id);
      if (input.heightU !== undefined && input.heightU < r.heightU) {
        const [row] = await tx
          .select({ top: sql<number | null>`max(${machines.uPosition} + ${machines.uHeight} - 1)`.mapWith(Number) })
          .from(machines)
          .where(eq(machines.rackId, r.id));
        const top = row?.top;
        if (top && top > input.heightU) {
          throw new AppError("U_OUT_OF_RANGE", `Rack ${r.name} has a machine up to U${top}: it cannot shrink to ${input.heightU}U`, [
            { field: "heightU", message: `At least ${top}U` },
          ]);
        }
      }
      await tx
        .update(racks)
        .set({
          ...(input.name !== undefined && { name: input.name }),
          ...(input.site !== undefined && { site: input.site }),
          ...(input.row !== undefined && { row: input.row }),
          ...(input.heightU !== undefined && { heightU: input.heightU }),
          updatedAt: new Date(),
        })
        .where(eq(racks.id, r.id));
      await recordStoreEvent(store, tx, { actor, kind: "rack.updated", message: `Updated rack ${input.name ?? r.name}`, payload: { rackId: r.id } });
    }),
  );
  d.bus.publish({ type: "rack.changed", rackId: input.id });
}

/** Delete an empty rack. @throws AppError RACK_NOT_FOUND, RACK_NOT_EMPTY */
export async function deleteRack(d: Domain, id: number, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { racks, machines } = store.t;
  await store.transaction(async (tx) => {
    const [r] = await forUpdate(store.dialect, tx.select().from(racks).where(eq(racks.id, id)).limit(1));
    if (!r) throw new AppError("RACK_NOT_FOUND", `Rack ${id} does not exist`);
    const [{ n }] = (await tx.select({ n: count() }).from(machines).where(eq(machines.rackId, id))) as [{ n: number }];
    if (n > 0) throw new AppError("RACK_NOT_EMPTY", `Rack ${r.name} still holds ${n} machine(s): move or delete them first`);
    await tx.delete(racks).where(eq(racks.id, id));
    await recordStoreEvent(store, tx, { actor, kind: "rack.deleted", message: `Deleted rack ${r.name}`, payload: { rackId: id } });
  });
  d.bus.publish({ type: "rack.deleted", rackId: id });
}

/** Racks with occupancy: machine count and used U. */
export async function listRacks(store: Store): Promise<RackSummary[]> {
  const { racks, machines } = store.t;
  return store.db
    .select({
      id: racks.id,
      name: racks.name,
      site: racks.site,
      row: racks.row,
      heightU: racks.heightU,
      machineCount: count(machines.id),
      usedU: sql<number>`coalesce(sum(${machines.uHeight}), 0)`.mapWith(Number),
    })
    .from(racks)
    .leftJoin(machines, eq(machines.rackId, racks.id))
    .groupBy(racks.id)
    .orderBy(asc(racks.name));
}

/** Racks with the machines in them, for drawing elevations. `rackIds` limits to some racks. */
export async function rackElevations(store: Store, rackIds?: number[]): Promise<RackElevation[]> {
  const { machines, nics, bmcs } = store.t;
  const summaries = (await listRacks(store)).filter((r) => !rackIds || rackIds.includes(r.id));
  const rows = await store.db
    .select({
      rackId: machines.rackId,
      id: machines.id,
      name: machines.name,
      state: machines.state,
      powerState: machines.powerState,
      powerPending: machines.powerPending,
      maintenance: machines.maintenance,
      uPosition: machines.uPosition,
      uHeight: machines.uHeight,
      bootMac: nics.mac,
      ip: nics.ip,
      lastError: machines.lastError,
      bmcReachable: bmcs.reachable,
      bmcLastSeen: bmcs.lastSeen,
      firmware: machines.firmware,
      bootFirmware: machines.bootFirmware,
    })
    .from(machines)
    .leftJoin(nics, and(eq(nics.machineId, machines.id), eq(nics.isBoot, true)))
    .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
    .where(isNotNull(machines.rackId));
  const byRack = new Map<number, RackElevation["machines"]>();
  for (const { rackId, bmcLastSeen, ...m } of rows) {
    const list = byRack.get(rackId!) ?? [];
    list.push({ ...m, bmcLastSeen: bmcLastSeen?.getTime() ?? null });
    byRack.set(rackId!, list);
  }
  return summaries.map((r) => ({ ...r, machines: byRack.get(r.id) ?? [] }));
}
