import { and, count, eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { MachineDetail } from "../../lib/dto";
import { allowedActions } from "../../lib/lifecycle";
import type { Store } from "../db/store";

/** One machine with its NICs and BMC (never the BMC password), on the Store. @throws AppError MACHINE_NOT_FOUND */
export async function getMachine(store: Store, id: number): Promise<MachineDetail> {
  const { machines, nics, racks, osProfiles, bmcs } = store.t;
  const [row] = await store.db
    .select({
      id: machines.id,
      name: machines.name,
      state: machines.state,
      powerState: machines.powerState,
      powerPending: machines.powerPending,
      maintenance: machines.maintenance,
      rackId: machines.rackId,
      rackName: racks.name,
      uPosition: machines.uPosition,
      uHeight: machines.uHeight,
      firmware: machines.firmware,
      bootFirmware: machines.bootFirmware,
      bootMac: nics.mac,
      ip: nics.ip,
      osProfileName: osProfiles.name,
      lastError: machines.lastError,
      bmcReachable: bmcs.reachable,
      bmcLastSeen: bmcs.lastSeen,
      maintenanceReason: machines.maintenanceReason,
      osProfileId: machines.osProfileId,
      bootArch: machines.bootArch,
      bootSeenAt: machines.bootSeenAt,
      inventory: machines.inventory,
      createdAt: machines.createdAt,
      updatedAt: machines.updatedAt,
    })
    .from(machines)
    .leftJoin(nics, and(eq(nics.machineId, machines.id), eq(nics.isBoot, true)))
    .leftJoin(racks, eq(racks.id, machines.rackId))
    .leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId))
    .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
    .where(eq(machines.id, id))
    .limit(1);
  if (!row) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
  const nicRows = await store.db
    .select({ id: nics.id, mac: nics.mac, ip: nics.ip, isBoot: nics.isBoot, ifname: nics.ifname, prefix: nics.prefix, gateway: nics.gateway })
    .from(nics)
    .where(eq(nics.machineId, id))
    .orderBy(nics.id);
  // Select BMC columns explicitly: the encrypted password never leaves this function.
  const [bmc] = await store.db
    .select({
      driver: bmcs.driver,
      address: bmcs.address,
      port: bmcs.port,
      username: bmcs.username,
      reachable: bmcs.reachable,
      lastSeen: bmcs.lastSeen,
      privilege: bmcs.privilege,
      cipherSuite: bmcs.cipherSuite,
      lastError: bmcs.lastError,
    })
    .from(bmcs)
    .where(eq(bmcs.machineId, id))
    .limit(1);
  return {
    ...row,
    bmcLastSeen: row.bmcLastSeen?.getTime() ?? null,
    bootSeenAt: row.bootSeenAt?.getTime() ?? null,
    inventory: row.inventory ?? null,
    createdAt: row.createdAt.getTime(),
    updatedAt: row.updatedAt.getTime(),
    nics: nicRows,
    bmc: bmc ? { ...bmc, hasPassword: true, lastSeen: bmc.lastSeen?.getTime() ?? null } : null,
    allowedActions: allowedActions(row.state),
  };
}

/** Machine counts by state and by power state, and in maintenance (the fleet page's header), on the Store. */
export async function fleetSummary(store: Store) {
  const { machines } = store.t;
  const byState = await store.db.select({ state: machines.state, n: count() }).from(machines).groupBy(machines.state);
  const byPower = await store.db.select({ power: machines.powerState, n: count() }).from(machines).groupBy(machines.powerState);
  const [m] = await store.db.select({ n: count() }).from(machines).where(eq(machines.maintenance, true));
  const total = byState.reduce((s, r) => s + r.n, 0);
  return { total, byState, byPower, maintenance: m!.n };
}
