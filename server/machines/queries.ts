import { and, asc, desc, eq, inArray, or, sql, type SQL } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { MachineDetail, MachineRow } from "../../lib/dto";
import { allowedActions, MACHINE_STATES } from "../../lib/lifecycle";
import { normalizeMac } from "../../lib/net";
import type { MachineFilter, SortField } from "../../lib/schemas";
import type { Db } from "../db/client";
import { bmcs, machines, nics, osProfiles, racks } from "../db/schema";

const bootNic = sql`${nics.machineId} = ${machines.id} AND ${nics.isBoot} = 1`;

/** Escape LIKE wildcards so a search for "10_0" means the literal text. */
function likeText(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** SQL conditions for a machine filter; shared by the table and by bulk actions over "all matching". */
export function filterConditions(f: MachineFilter): SQL | undefined {
  const conds: (SQL | undefined)[] = [];
  if (f.states?.length) conds.push(inArray(machines.state, f.states));
  if (f.rackId) conds.push(eq(machines.rackId, f.rackId));
  if (f.power) conds.push(eq(machines.powerState, f.power));
  if (f.maintenance !== undefined) conds.push(eq(machines.maintenance, f.maintenance));
  if (f.q) {
    const mac = normalizeMac(f.q);
    // A partial MAC typed with dashes or in Cisco dots still finds the colon form we store.
    const partialMac = /^[0-9a-f]{2}([-:][0-9a-f]{1,2})+[-:]?$/i.test(f.q) ? f.q.toLowerCase().replaceAll("-", ":") : null;
    const pat = likeText(f.q.toLowerCase());
    const macPat = partialMac ? likeText(partialMac) : pat;
    conds.push(
      or(
        sql`${machines.name} LIKE ${pat} ESCAPE '\\'`,
        sql`${nics.ip} LIKE ${pat} ESCAPE '\\'`,
        mac ? eq(nics.mac, mac) : sql`${nics.mac} LIKE ${macPat} ESCAPE '\\'`,
      ),
    );
  }
  // Inventory filters read the agent's JSON; machines without an inventory never match them.
  if (f.minMemoryGiB !== undefined) conds.push(sql`json_extract(${machines.inventory}, '$.memoryBytes') >= ${Math.round(f.minMemoryGiB * 2 ** 30)}`);
  if (f.minDisks !== undefined) conds.push(sql`json_array_length(${machines.inventory}, '$.disks') >= ${f.minDisks}`);
  if (f.cpuModel) conds.push(sql`json_extract(${machines.inventory}, '$.cpu.model') LIKE ${likeText(f.cpuModel.toLowerCase())} ESCAPE '\\'`);
  const present = conds.filter((c): c is SQL => c !== undefined);
  return present.length ? and(...present) : undefined;
}

const stateOrder = sql.raw(
  `CASE machines.state ${MACHINE_STATES.map((s, i) => `WHEN '${s}' THEN ${i}`).join(" ")} ELSE ${MACHINE_STATES.length} END`,
);

const SORT_COLUMNS: Record<SortField, SQL[]> = {
  name: [sql`${machines.name}`],
  // Lifecycle order (enrolled … clean_failed), not alphabetical.
  state: [stateOrder, sql`${machines.name}`],
  power: [sql`${machines.powerState}`, sql`${machines.name}`],
  rack: [sql`${racks.name}`, sql`${machines.uPosition}`],
  // Numeric order of dotted quads ("10.0.0.9" before "10.0.0.10"); ip_num is registered in db/client.ts.
  ip: [sql`ip_num(${nics.ip})`],
  mac: [sql`${nics.mac}`],
  created: [sql`${machines.id}`],
};

const rowColumns = {
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
  bmcLastSeen: sql<number | null>`${bmcs.lastSeen}`,
};

export interface ListResult {
  rows: MachineRow[];
  total: number;
  page: number;
  pageSize: number;
}

/** The table's row columns with every join they need. */
function selectRows(db: Db) {
  return db
    .select(rowColumns)
    .from(machines)
    .leftJoin(nics, bootNic)
    .leftJoin(racks, eq(racks.id, machines.rackId))
    .leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId))
    .leftJoin(bmcs, eq(bmcs.machineId, machines.id));
}

/** How many machines match; the NIC join only when the text search looks at MACs and IPs. */
function countMatching(db: Db, where: SQL | undefined, q: string | undefined): number {
  const countQuery = db.select({ n: sql<number>`count(*)` }).from(machines);
  return (q ? countQuery.leftJoin(nics, bootNic) : countQuery).where(where).get()!.n;
}

/**
 * One page of the machine table, filtered and sorted in SQL. Two steps: first the page's ids, joining only what
 * the filter and the sort need (so skipped rows of deep pages cost an index step, not five joins), then the
 * page's rows with everything the table shows. A page that is most of the table (an export, "all machines")
 * is cheaper in one query.
 */
export function listMachines(
  db: Db,
  opts: MachineFilter & { sort: SortField; dir: "asc" | "desc"; page: number; pageSize: number },
): ListResult {
  const where = filterConditions(opts);
  const order = [...SORT_COLUMNS[opts.sort].map((c) => (opts.dir === "desc" ? desc(c) : asc(c))), asc(machines.id)];
  const offset = (opts.page - 1) * opts.pageSize;
  const total = countMatching(db, where, opts.q);
  if (opts.pageSize > 1000) {
    const rows = selectRows(db).where(where).orderBy(...order).limit(opts.pageSize).offset(offset).all();
    return { rows, total, page: opts.page, pageSize: opts.pageSize };
  }
  let idQuery = db.select({ id: machines.id }).from(machines).$dynamic();
  if (opts.q || opts.sort === "ip" || opts.sort === "mac") idQuery = idQuery.leftJoin(nics, bootNic);
  if (opts.sort === "rack") idQuery = idQuery.leftJoin(racks, eq(racks.id, machines.rackId));
  const ids = idQuery.where(where).orderBy(...order).limit(opts.pageSize).offset(offset).all().map((r) => r.id);
  const position = new Map(ids.map((id, i) => [id, i]));
  const rows = ids.length
    ? selectRows(db)
        .where(inArray(machines.id, ids))
        .all()
        .sort((a, b) => position.get(a.id)! - position.get(b.id)!)
    : [];
  return { rows, total, page: opts.page, pageSize: opts.pageSize };
}

/** Ids of every machine matching a filter (for bulk actions over "all N matching"). */
export function matchingIds(db: Db, filter: MachineFilter): number[] {
  return db
    .select({ id: machines.id })
    .from(machines)
    .leftJoin(nics, bootNic)
    .where(filterConditions(filter))
    .orderBy(asc(machines.name))
    .all()
    .map((r) => r.id);
}

/** Counts per state and power for the overview. */
export function fleetSummary(db: Db) {
  const byState = db.select({ state: machines.state, n: sql<number>`count(*)` }).from(machines).groupBy(machines.state).all();
  const byPower = db
    .select({ power: machines.powerState, n: sql<number>`count(*)` })
    .from(machines)
    .groupBy(machines.powerState)
    .all();
  const maintenance = db.select({ n: sql<number>`count(*)` }).from(machines).where(eq(machines.maintenance, true)).get()!.n;
  const total = byState.reduce((s, r) => s + r.n, 0);
  return { total, byState, byPower, maintenance };
}

/** Everything the machine page shows. @throws AppError MACHINE_NOT_FOUND */
export function getMachine(db: Db, id: number): MachineDetail {
  const row = db
    .select({
      ...rowColumns,
      maintenanceReason: machines.maintenanceReason,
      osProfileId: machines.osProfileId,
      bootArch: machines.bootArch,
      bootSeenAt: sql<number | null>`${machines.bootSeenAt}`,
      inventory: machines.inventory,
      createdAt: machines.createdAt,
      updatedAt: machines.updatedAt,
    })
    .from(machines)
    .leftJoin(nics, bootNic)
    .leftJoin(racks, eq(racks.id, machines.rackId))
    .leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId))
    .leftJoin(bmcs, eq(bmcs.machineId, machines.id))
    .where(eq(machines.id, id))
    .get();
  if (!row) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
  const nicRows = db
    .select({ id: nics.id, mac: nics.mac, ip: nics.ip, isBoot: nics.isBoot, ifname: nics.ifname, prefix: nics.prefix, gateway: nics.gateway })
    .from(nics)
    .where(eq(nics.machineId, id))
    .all();
  // Select BMC columns explicitly: the encrypted password never leaves this function.
  const bmc = db
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
    .get();
  return {
    ...row,
    inventory: row.inventory ?? null,
    createdAt: row.createdAt.getTime(),
    updatedAt: row.updatedAt.getTime(),
    nics: nicRows,
    bmc: bmc ? { ...bmc, hasPassword: true, lastSeen: bmc.lastSeen?.getTime() ?? null } : null,
    allowedActions: allowedActions(row.state),
  };
}

