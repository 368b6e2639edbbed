import { asc, eq, sql } from "drizzle-orm";
import type { RackElevation, RackSummary } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { z } from "zod";
import type { rackCreateSchema, rackUpdateSchema } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { bmcs, machines, nics, racks } from "../db/schema";
import { recordEvent } from "../events/audit";

type RackCreate = z.output<typeof rackCreateSchema>;
type RackUpdate = z.output<typeof rackUpdateSchema>;

function checkNameFree(db: Pick<Db, "select">, name: string, exceptId?: number) {
  const hit = db.select({ id: racks.id }).from(racks).where(eq(racks.name, name)).get();
  if (hit && hit.id !== exceptId) {
    throw new AppError("CONFLICT", `A rack named ${name} already exists`, [{ field: "name", message: "Name taken" }]);
  }
}

/** @throws AppError CONFLICT */
export function createRack(d: Domain, input: RackCreate, actor: Actor): { id: number } {
  const rack = d.db.transaction((tx) => {
    checkNameFree(tx, input.name);
    const now = new Date();
    const r = tx
      .insert(racks)
      .values({ name: input.name, site: input.site ?? null, row: input.row ?? null, heightU: input.heightU, createdAt: now, updatedAt: now })
      .returning()
      .get();
    recordEvent(tx, { actor, kind: "rack.created", message: `Created rack ${r.name} (${r.heightU}U)`, payload: { rackId: r.id } });
    return r;
  });
  d.bus.publish({ type: "rack.changed", rackId: rack.id });
  return { id: rack.id };
}

/** Rename, move or resize a rack. Shrinking below an installed machine is refused. @throws AppError RACK_NOT_FOUND, CONFLICT, U_OUT_OF_RANGE */
export function updateRack(d: Domain, input: RackUpdate, actor: Actor): void {
  d.db.transaction((tx) => {
    const r = tx.select().from(racks).where(eq(racks.id, input.id)).get();
    if (!r) throw new AppError("RACK_NOT_FOUND", `Rack ${input.id} does not exist`);
    if (input.name !== undefined) checkNameFree(tx, input.name, r.id);
    if (input.heightU !== undefined && input.heightU < r.heightU) {
      const top = tx
        .select({ top: sql<number>`max(${machines.uPosition} + ${machines.uHeight} - 1)` })
        .from(machines)
        .where(eq(machines.rackId, r.id))
        .get()?.top;
      if (top && top > input.heightU) {
        throw new AppError("U_OUT_OF_RANGE", `Rack ${r.name} has a machine up to U${top}: it cannot shrink to ${input.heightU}U`, [
          { field: "heightU", message: `At least ${top}U` },
        ]);
      }
    }
    tx.update(racks)
      .set({
        ...(input.name !== undefined && { name: input.name }),
        ...(input.site !== undefined && { site: input.site }),
        ...(input.row !== undefined && { row: input.row }),
        ...(input.heightU !== undefined && { heightU: input.heightU }),
        updatedAt: new Date(),
      })
      .where(eq(racks.id, r.id))
      .run();
    recordEvent(tx, { actor, kind: "rack.updated", message: `Updated rack ${input.name ?? r.name}`, payload: { rackId: r.id } });
  });
  d.bus.publish({ type: "rack.changed", rackId: input.id });
}

/** Delete an empty rack. @throws AppError RACK_NOT_FOUND, RACK_NOT_EMPTY */
export function deleteRack(d: Domain, id: number, actor: Actor): void {
  d.db.transaction((tx) => {
    const r = tx.select().from(racks).where(eq(racks.id, id)).get();
    if (!r) throw new AppError("RACK_NOT_FOUND", `Rack ${id} does not exist`);
    const n = tx.select({ n: sql<number>`count(*)` }).from(machines).where(eq(machines.rackId, id)).get()!.n;
    if (n > 0) throw new AppError("RACK_NOT_EMPTY", `Rack ${r.name} still holds ${n} machine(s): move or delete them first`);
    tx.delete(racks).where(eq(racks.id, id)).run();
    recordEvent(tx, { actor, kind: "rack.deleted", message: `Deleted rack ${r.name}`, payload: { rackId: id } });
  });
  d.bus.publish({ type: "rack.deleted", rackId: id });
}

/** Racks with occupancy: machine count and used U. */
export function listRacks(db: Db): RackSummary[] {
  return db
    .select({
      id: racks.id,
      name: racks.name,
      site: racks.site,
      row: racks.row,
      heightU: racks.heightU,
      machineCount: sql<number>`count(${machines.id})`,
      usedU: sql<number>`coalesce(sum(${machines.uHeight}), 0)`,
    })
    .from(racks)
    .leftJoin(machines, eq(machines.rackId, racks.id))
    .groupBy(racks.id)
    .orderBy(asc(racks.name))
    .all();
}

/** Racks with the machines in them, for drawing elevations. `rackIds` limits to some racks. */
export function rackElevations(db: Db, rackIds?: number[]): RackElevation[] {
  const summaries = listRacks(db).filter((r) => !rackIds || rackIds.includes(r.id));
  const rows = db
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
      bmcLastSeen: sql<number | null>`${bmcs.lastSeen}`,
      firmware: machines.firmware,
      bootFirmware: machines.bootFirmware,
    })
    .from(machines)
    .leftJoin(nics, sql`${nics.machineId} = ${machines.id} AND ${nics.isBoot} = 1`)
    .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
    .where(sql`${machines.rackId} IS NOT NULL`)
    .all();
  const byRack = new Map<number, RackElevation["machines"]>();
  for (const { rackId, ...m } of rows) {
    const list = byRack.get(rackId!) ?? [];
    list.push(m);
    byRack.set(rackId!, list);
  }
  return summaries.map((r) => ({ ...r, machines: byRack.get(r.id) ?? [] }));
}
