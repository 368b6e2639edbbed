import { AppError, type ErrorDetail } from "../../lib/errors";
import { bmcAddressProblem } from "../../lib/bmc-address";
import { isIPv4, normalizeMac } from "../../lib/net";
import { parseEnrollFast } from "../../lib/enroll-parse";
import { machineEnrollSchema, type MachineEnroll } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { and, eq, getTableColumns, inArray, isNotNull, ne } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Db } from "../db/client";
import { insertMany, insertManyReturning } from "../db/prepared";
import { sqliteDbOf, storeOf, type Store, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { StoreAllocator } from "../subnets/allocate";
import { bmcRow, bootAddressing, bootNicRow, loadedAddressing, describe, machineRow, profileMissing, uniqueProblems, type BootAddressing, type UniqueKeys } from "./enroll";
import { checkPlacementWith, type Occupant } from "./placement";
import { uniqueGuarded } from "./unique";

/**
 * Enrollment of many machines at once, all-or-nothing: the CSV import (csv.ts) and `machines.bulkEnroll` (JSON) share
 * it. Every row is checked in one pass and every problem of every row is reported (syntax per field, duplicates within
 * the batch, clashes with the database, placement against the database and the rows before it); when any row fails,
 * nothing is written. Otherwise all rows are written in one transaction with one summary audit event.
 *
 * Cost: the database checks are prepared statements (enroll.ts uniqueProblems, the placement lookups below) and the
 * rows are inserted in multi-row statements, so a batch of 10,000 costs well under a second.
 */

/** At most this many machines per import or bulk enrollment (one request, one transaction). */
export const MAX_BULK_ROWS = 10_000;

export interface EnrollRow {
  /** How the row is named in errors: the CSV data row, or the JSON array index + 1. */
  row: number;
  /** The row for machineEnrollSchema; null when it is not usable at all (e.g. not an object): only `errors` count. */
  candidate: Record<string, unknown> | null;
  /** Problems found before (an unknown rack or profile name, an unknown field); the row is not enrolled. */
  errors?: ErrorDetail[];
  /** The rack the row names does not exist: its placement is not checked. */
  rackUnknown?: boolean;
}

export interface CheckedRows {
  /** Per row (same order): the parsed input, or null when the row does not parse. */
  parsed: (MachineEnroll | null)[];
  /** Every problem, in row order. */
  errors: ErrorDetail[];
  /** The rows that pass, in order (all rows when `errors` is empty). */
  inputs: MachineEnroll[];
  /** Per input: its boot NIC's address columns and allocation (subnets, issue 14), from `allocator`. */
  boots: BootAddressing[];
  /** Holds the batch's addresses in memory; insertRows records and flushes them. */
  allocator: StoreAllocator;
}

/** The values of a row that must be unique, normalized as enrollment stores them (null where unusable). */
function keysOf(c: Record<string, unknown>): UniqueKeys & { name: string | null; mac: string | null; ip: string | null } {
  const text = (v: unknown) => (typeof v === "string" ? v.trim() : "");
  const name = text(c.name).toLowerCase();
  const mac = text(c.bootMac);
  const ip = text(c.ip);
  const b = c.bmc !== null && typeof c.bmc === "object" ? (c.bmc as Record<string, unknown>) : null;
  const address = b ? text(b.address).toLowerCase() : "";
  const port = b?.port;
  const portOk = port === undefined || (typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535);
  return {
    name: name || null,
    mac: mac ? normalizeMac(mac) : null,
    ip: ip && isIPv4(ip) ? ip : null,
    bmc:
      address && !bmcAddressProblem(address) && portOk
        ? { driver: text(b!.driver) || "ipmitool", address, port: port ?? 623 }
        : null,
  };
}

/** keysOf for a row that parsed: the schema already trimmed, lower-cased and normalized every value (the same keys). */
function keysOfParsed(m: MachineEnroll): ReturnType<typeof keysOf> {
  return {
    name: m.name,
    mac: m.bootMac,
    ip: m.ip ?? null,
    bmc: m.bmc ? { driver: m.bmc.driver, address: m.bmc.address, port: m.bmc.port } : null,
  };
}

/**
 * What the row checks read from the database, answered synchronously inside the loop: the uniqueness clashes of a
 * row's keys (enroll.ts uniqueProblems' messages), the racks, the profiles, and a machine occupying U positions.
 */
interface BatchLookups {
  unique: (keys: UniqueKeys) => ErrorDetail[];
  rack: (id: number) => { name: string; heightU: number } | undefined;
  clash: (rackId: number, bottom: number, top: number) => Occupant | undefined;
  profile: (id: number) => boolean;
}

const placementLookups = new WeakMap<object, ReturnType<typeof preparePlacement>>();

function preparePlacement(db: Db) {
  return {
    racks: db.$client.prepare<[], { id: number; name: string; heightU: number }>("SELECT id, name, height_u AS heightU FROM racks"),
    profiles: db.$client.prepare<[], { id: number }>("SELECT id FROM os_profiles"),
    clash: db.$client.prepare<[number, number, number], Occupant>(
      "SELECT name, u_position AS u, u_height AS h FROM machines WHERE rack_id = ? AND u_position <= ? AND u_position + u_height - 1 >= ?",
    ),
  };
}

/** SQLite: statements prepared once on the Store's connection, run per row inside the open transaction (the fast path). */
function sqliteLookups(store: Store): BatchLookups {
  const db = sqliteDbOf(store);
  let q = placementLookups.get(db.$client);
  if (!q) placementLookups.set(db.$client, (q = preparePlacement(db)));
  const rackById = new Map(q.racks.all().map((r) => [r.id, r]));
  const profileIds = new Set(q.profiles.all().map((p) => p.id));
  const clash = q.clash;
  return {
    unique: (keys) => uniqueProblems(db, keys),
    rack: (id) => rackById.get(id),
    clash: (rackId, bottom, top) => clash.get(rackId, top, bottom),
    profile: (id) => profileIds.has(id),
  };
}

/** Values per IN list: far below PostgreSQL's 65,535 bound parameters. */
const IN_CHUNK = 1000;

async function inChunks<T>(values: Iterable<string | number>, read: (chunk: (string | number)[]) => Promise<T[]>): Promise<T[]> {
  const all = [...new Set(values)];
  const out: T[] = [];
  for (let i = 0; i < all.length; i += IN_CHUNK) out.push(...(await read(all.slice(i, i + IN_CHUNK))));
  return out;
}

/**
 * PostgreSQL: everything the rows can clash with, read up front in a few `IN (…)` queries inside the transaction
 * (a round trip per row and check would cost more than the batch), then answered from memory with the messages of
 * uniqueProblems. The racks the rows name are locked first (`FOR UPDATE`, ascending ids), so a concurrent enrollment
 * into one of them waits, and the occupants read here stay true until commit.
 */
async function pgLookups(store: Store, tx: StoreTx, keys: UniqueKeys[], rackIds: number[]): Promise<BatchLookups> {
  const { machines: m, nics: x, bmcs: b, racks: r, osProfiles: o } = store.t;
  // A value with a NUL (a row the schema refuses) cannot be in PostgreSQL's text columns, nor be bound: not looked up.
  const usable = (v: string | null | undefined): v is string => Boolean(v) && !v!.includes("\0");
  const names = keys.map((k) => k.name).filter(usable);
  const macs = keys.map((k) => k.mac).filter(usable);
  // IPs and BMC addresses share one space: each is looked up as both.
  const addresses = keys.flatMap((k) => [k.ip, k.bmc && k.bmc.driver !== "fake" ? k.bmc.address.toLowerCase() : null]).filter(usable);
  const locked = [...new Set(rackIds)].sort((p, q) => p - q);
  if (locked.length) await inChunks(locked, (c) => tx.select({ id: r.id }).from(r).where(inArray(r.id, c as number[])).orderBy(r.id).for("update"));
  const racks = new Map((await tx.select({ id: r.id, name: r.name, heightU: r.heightU }).from(r)).map((row) => [row.id, row]));
  const profiles = new Set((await tx.select({ id: o.id }).from(o)).map((p) => p.id));
  const taken = new Set((await inChunks(names, (c) => tx.select({ name: m.name }).from(m).where(inArray(m.name, c as string[])))).map((row) => row.name));
  const macOwner = new Map(
    (await inChunks(macs, (c) => tx.select({ mac: x.mac, name: m.name }).from(x).innerJoin(m, eq(m.id, x.machineId)).where(inArray(x.mac, c as string[])))).map((row) => [row.mac, row.name]),
  );
  const ipOwner = new Map<string, string>();
  for (const row of await inChunks(addresses, (c) => tx.select({ ip: x.ip, name: m.name }).from(x).innerJoin(m, eq(m.id, x.machineId)).where(inArray(x.ip, c as string[])))) {
    if (row.ip && !ipOwner.has(row.ip)) ipOwner.set(row.ip, row.name);
  }
  // SQLite's lookups walk the bmcs_address index (address, port): the first BMC of an address is its lowest port.
  const bmcRows = await inChunks(addresses, (c) =>
    tx
      .select({ address: b.address, port: b.port, name: m.name })
      .from(b)
      .innerJoin(m, eq(m.id, b.machineId))
      .where(and(inArray(b.address, c as string[]), ne(b.driver, "fake")))
      .orderBy(b.address, b.port, b.machineId),
  );
  const bmcAt = new Map<string, string>();
  const bmcOwner = new Map<string, string>();
  for (const row of bmcRows) {
    if (!bmcAt.has(row.address)) bmcAt.set(row.address, row.name);
    const key = `${row.address}:${row.port}`;
    if (!bmcOwner.has(key)) bmcOwner.set(key, row.name);
  }
  // The occupants of the named racks, in the machines_rack_u index's order (SQLite's lookup finds the lowest U first).
  const occupants = new Map<number, { name: string; u: number; h: number }[]>();
  const placed = await inChunks(locked, (c) =>
    tx
      .select({ rackId: m.rackId, name: m.name, u: m.uPosition, h: m.uHeight })
      .from(m)
      .where(and(inArray(m.rackId, c as number[]), isNotNull(m.uPosition)))
      .orderBy(m.rackId, m.uPosition, m.id),
  );
  for (const p of placed) {
    const list = occupants.get(p.rackId!) ?? [];
    list.push({ name: p.name, u: p.u!, h: p.h });
    occupants.set(p.rackId!, list);
  }
  return {
    unique: (v) => {
      const errors: ErrorDetail[] = [];
      if (v.name && taken.has(v.name)) errors.push({ field: "name", message: `A machine named ${v.name} already exists` });
      if (v.mac) {
        const hit = macOwner.get(v.mac);
        if (hit !== undefined) errors.push({ field: "bootMac", message: `MAC ${v.mac} belongs to ${hit}` });
      }
      if (v.ip) {
        const hit = ipOwner.get(v.ip);
        if (hit !== undefined) errors.push({ field: "ip", message: `IP ${v.ip} belongs to ${hit}` });
        const bmc = bmcAt.get(v.ip);
        if (bmc !== undefined) errors.push({ field: "ip", message: `IP ${v.ip} is the BMC address of ${bmc}` });
      }
      if (v.bmc && v.bmc.driver !== "fake") {
        const address = v.bmc.address.toLowerCase();
        const hit = bmcOwner.get(`${address}:${v.bmc.port}`);
        if (hit !== undefined) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address}:${v.bmc.port} belongs to ${hit}'s BMC` });
        const host = ipOwner.get(address);
        if (host !== undefined) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address} is the IP of ${host}` });
      }
      return errors;
    },
    rack: (id) => racks.get(id),
    clash: (rackId, bottom, top) => occupants.get(rackId)?.find((o) => o.u <= top && o.u + o.h - 1 >= bottom),
    profile: (id) => profiles.has(id),
  };
}

function detailsOf(err: unknown): ErrorDetail[] {
  if (!(err instanceof AppError)) throw err;
  return err.details.length ? err.details : [{ message: err.message }];
}

export interface CheckOptions {
  /** How a schema field is named in the caller's input (the CSV's column names). */
  field?: (f: string) => string;
  /** How the batch is called in duplicate messages ("this file"). */
  batch?: string;
}

/**
 * Check every row (nothing is written). Run it inside `tx`, the Store transaction that writes the rows, so the checks
 * hold when they are written.
 */
export async function checkEnrollRows(d: Domain, store: Store, tx: StoreTx, rows: EnrollRow[], opts: CheckOptions = {}): Promise<CheckedRows> {
  const field = opts.field ?? ((f: string) => f);
  const batch = opts.batch ?? "this request";

  // Pass 1, without the database: syntax, and what each row claims that an earlier row of the batch already claims.
  const errors: ErrorDetail[] = [];
  const parsed: (MachineEnroll | null)[] = [];
  // What each earlier row claims: a value clashing with one is reported as a duplicate within the batch.
  const seen = { name: new Map<string, number>(), mac: new Map<string, number>(), bmc: new Map<string, number>() };
  /** Machine IPs and BMC addresses share one space: an address is one host's. */
  const addresses = new Map<string, { row: number; what: "IP" | "BMC address" }>();
  const pending: { r: EnrollRow; input: MachineEnroll | null; keys: UniqueKeys; rowErrors: ErrorDetail[] }[] = [];
  for (const r of rows) {
    const row = r.row;
    const rowErrors: ErrorDetail[] = [...(r.errors ?? [])];
    const add = (f: string, message: string) => rowErrors.push({ row, field: field(f), message });
    if (!r.candidate) {
      parsed.push(null);
      pending.push({ r, input: null, keys: {}, rowErrors });
      continue;
    }
    // Rows the fast path can check by hand take its value (the schema's, enroll-parse.test.ts); the others, and every
    // row with a problem, go through the schema, whose issues are the errors.
    const fast = parseEnrollFast(r.candidate);
    const p = fast ? ({ success: true, data: fast } as const) : machineEnrollSchema.safeParse(r.candidate);
    if (!p.success) {
      for (const issue of p.error.issues) {
        const message = issue.code === "invalid_type" && /NaN|nan/.test(issue.message) ? "must be a whole number" : issue.message;
        add(issue.path.join("."), message);
      }
    }
    parsed.push(p.success ? p.data : null);
    const keys = p.success ? keysOfParsed(p.data) : keysOf(r.candidate);
    const dup = (map: Map<string, number>, key: string | null, f: string, what: string) => {
      if (!key) return;
      const first = map.get(key);
      if (first !== undefined) add(f, `${what} is also on row ${first} of ${batch}`);
      else map.set(key, row);
    };
    dup(seen.name, keys.name, "name", `Name ${keys.name}`);
    dup(seen.mac, keys.mac, "bootMac", `MAC ${keys.mac}`);
    const bmcKey = keys.bmc && keys.bmc.driver !== "fake" ? keys.bmc : null;
    dup(seen.bmc, bmcKey ? `${bmcKey.address}:${bmcKey.port}` : null, "bmc.address", `BMC address ${bmcKey?.address}:${bmcKey?.port}`);
    const claim = (address: string | null | undefined, what: "IP" | "BMC address", f: string) => {
      if (!address) return;
      const first = addresses.get(address);
      if (first && first.row !== row && !(first.what === "BMC address" && what === "BMC address")) {
        add(f, `${what} ${address} is also the ${first.what} on row ${first.row} of ${batch}`);
      } else if (!first) addresses.set(address, { row, what });
    };
    // An address the row leaves to its subnet (mode auto) is not the row's typed IP: only typed ones are checked here.
    const net = r.candidate.network as { subnetId?: unknown; addressMode?: unknown } | undefined;
    const autoAddress = Boolean(net?.subnetId) && (net?.addressMode === undefined || net.addressMode === "auto");
    if (autoAddress) keys.ip = null;
    claim(keys.ip, "IP", "ip");
    if (bmcKey) claim(bmcKey.address, "BMC address", "bmc.address");
    pending.push({ r, input: p.success ? p.data : null, keys, rowErrors });
  }

  // Pass 2, against the database (and the rows accepted before each row, for placement).
  const q =
    store.dialect === "sqlite"
      ? sqliteLookups(store)
      : await pgLookups(
          store,
          tx,
          pending.map((p) => p.keys),
          pending.flatMap((p) => (p.input?.rackId != null ? [p.input.rackId] : [])),
        );
  // The U ranges taken by the rows accepted so far, per rack.
  const taken = new Map<number, Occupant[]>();
  const clashWithBatch = (rackId: number, bottom: number, top: number) =>
    q.clash(rackId, bottom, top) ?? taken.get(rackId)?.find((o) => o.u! <= top && o.u! + o.h - 1 >= bottom);
  const inputs: MachineEnroll[] = [];
  const inputRows: number[] = [];
  for (const { r, input, keys, rowErrors } of pending) {
    const row = r.row;
    if (!r.candidate) {
      errors.push(...rowErrors);
      continue;
    }
    const add = (f: string, message: string) => rowErrors.push({ row, field: field(f), message });
    for (const det of q.unique(keys)) add(det.field ?? "", det.message);
    if (!input || r.rackUnknown) {
      errors.push(...rowErrors);
      continue;
    }
    // A row that passes so far is placed against the database and the rows accepted before it; a failing row
    // against the database alone (reported in the same pass).
    const ok = rowErrors.length === 0;
    try {
      checkPlacementWith(input, q.rack, ok ? clashWithBatch : q.clash);
      if (input.osProfileId != null && !q.profile(input.osProfileId)) throw profileMissing(input.osProfileId);
    } catch (err) {
      for (const det of detailsOf(err)) add(det.field ?? "uPosition", det.message);
    }
    if (rowErrors.length === 0) {
      inputs.push(input);
      inputRows.push(row);
      if (input.rackId != null) {
        const list = taken.get(input.rackId) ?? [];
        list.push({ name: input.name, u: input.uPosition!, h: input.uHeight });
        taken.set(input.rackId, list);
      }
    }
    errors.push(...rowErrors);
  }

  // Addresses from subnets (issue 14), for the rows that pass: one allocator for the batch reads each subnet once
  // and hands out addresses in memory. The batch's typed IPs and BMC addresses are never handed out, and pinned
  // (static) addresses are held for their rows first, so an earlier row's auto address never takes a later row's.
  const allocator = new StoreAllocator(store, tx);
  // Without a row naming a subnet no subnet is ever loaded, and noting taken addresses would change nothing.
  const subnetIds = [...new Set(inputs.flatMap((input) => (input.network?.subnetId ? [input.network.subnetId] : [])))].sort((x, y) => x - y);
  if (subnetIds.length) {
    // Loaded (on PostgreSQL: their rows locked) in ascending id order, so two batches over the same subnets cannot
    // deadlock; a missing subnet is reported on each row that names it, below.
    for (const id of subnetIds) {
      try {
        await allocator.subnet(id, "network.subnetId");
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
      }
    }
    for (const [i, input] of inputs.entries()) {
      const n = input.network;
      if (n?.subnetId && n.addressMode === "static" && input.ip) await allocator.hold(n.subnetId, input.ip, inputRows[i]!);
      else if (!n?.subnetId && input.ip) allocator.noteTaken(input.ip);
      if (input.bmc) allocator.noteTaken(input.bmc.address);
    }
  }
  const boots: BootAddressing[] = [];
  const kept: MachineEnroll[] = [];
  for (const [i, input] of inputs.entries()) {
    const row = inputRows[i]!;
    try {
      // Without a subnet, or from a subnet loaded above, nothing is read: no await per row (a pin may name its holder).
      boots.push(loadedAddressing(allocator, input.network, input.ip ?? null) ?? (await bootAddressing(allocator, input.network, input.ip ?? null, row)));
      kept.push(input);
    } catch (err) {
      for (const det of detailsOf(err)) errors.push({ row, field: field(det.field ?? "network.subnetId"), message: det.message });
    }
  }
  errors.sort((x, y) => (x.row ?? 0) - (y.row ?? 0));
  return { parsed, errors, inputs: kept, boots, allocator };
}

/** Rows per multi-row INSERT on PostgreSQL: at most 20 columns × 1,000 rows, below its 65,535 bound parameters. */
const PG_CHUNK = 1000;

/**
 * A multi-row INSERT of `rows` into a table of the Store, in the open transaction, returning the given columns of the
 * new rows (in no promised order: key them by a unique column). SQLite: prepared statements of 100 rows per shape of
 * row (insertMany), run on the transaction's connection; PostgreSQL: drizzle's insert, 1,000 rows per statement.
 */
async function insertAll(store: Store, tx: StoreTx, table: "machines" | "nics" | "bmcs", rows: Record<string, unknown>[], returning: string[] = []): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  if (!rows.length) return out;
  if (store.dialect === "sqlite") {
    const db = sqliteDbOf(store);
    const t = store.t[table] as unknown as SQLiteTable;
    const groups = new Map<string, Record<string, unknown>[]>();
    for (const r of rows) {
      const key = Object.keys(r).join(",");
      const g = groups.get(key);
      if (g) g.push(r);
      else groups.set(key, [r]);
    }
    for (const [key, g] of groups) {
      if (returning.length) out.push(...insertManyReturning(db, t, key.split(","), returning)(g));
      else insertMany(db, t, key.split(","))(g);
    }
    return out;
  }
  const t = store.t[table] as unknown as PgTable;
  const cols = getTableColumns(t);
  const back = Object.fromEntries(returning.map((f) => [f, cols[f]!]));
  for (let i = 0; i < rows.length; i += PG_CHUNK) {
    const q = tx.insert(t).values(rows.slice(i, i + PG_CHUNK));
    if (returning.length) out.push(...(await q.returning(back)));
    else await q;
  }
  return out;
}

/** Write checked rows inside the open transaction `tx`; returns their ids in row order and the summary event. */
async function insertRows(d: Domain, store: Store, tx: StoreTx, checked: CheckedRows, actor: Actor, source: string) {
  const { inputs, boots, allocator } = checked;
  const now = new Date();
  // Machines in multi-row inserts, their new ids keyed by name (unique, checked above); then their boot NICs (the
  // ids of those whose address was allocated from a subnet, for the allocation rows) and BMCs, as single enrollment
  // writes them (bootNicRow, bmcRow; bulk-enroll.test.ts compares both).
  const machineRows = inputs.map((input) => machineRow(input, now));
  const idByName = new Map<unknown, number>();
  for (const r of await insertAll(store, tx, "machines", machineRows, ["id", "name"])) idByName.set(r.name, Number(r.id));
  const ids = inputs.map((input) => {
    const id = idByName.get(input.name);
    if (id === undefined) throw new Error(`bulk enrollment: no id returned for ${input.name}`);
    return id;
  });
  const nicRows = inputs.map((input, i) => bootNicRow(ids[i]!, input, boots[i]!));
  const allocated = boots.some((b) => b.allocated);
  const nicIds = new Map<number, number>();
  for (const r of await insertAll(store, tx, "nics", nicRows, allocated ? ["id", "machineId"] : [])) nicIds.set(Number(r.machineId), Number(r.id));
  if (allocated) {
    boots.forEach((boot, i) => {
      if (boot.allocated) allocator.record(boot.allocated, boot.mode, { machineId: ids[i]!, nicId: nicIds.get(ids[i]!) ?? null });
    });
  }
  const bmcRows = inputs.map((input, i) => bmcRow(d, ids[i]!, input)).filter((r): r is Record<string, unknown> => r !== null);
  await insertAll(store, tx, "bmcs", bmcRows);
  await allocator.flush();
  const racks = [...new Set(inputs.flatMap((input) => (input.rackId != null ? [input.rackId] : [])))];
  // One event for the whole batch: an import of 10,000 is one operator action, not 10,000 audit rows.
  const event = await recordStoreEvent(store, tx, {
    actor,
    kind: "machine.bulk_enrolled",
    message: `Enrolled ${inputs.length.toLocaleString("en")} machine${inputs.length === 1 ? "" : "s"} (${source})`,
    payload: { source, count: inputs.length, firstId: ids[0] ?? null, lastId: ids.at(-1) ?? null, rackIds: racks },
  });
  return { ids, racks, event };
}

/**
 * Check all rows and, when every row passes and this is not a dry run, enroll them, in one Store transaction (either
 * database). On PostgreSQL a row taken by a concurrent transaction after the checks ends in a unique violation; the
 * whole batch is then checked again once (uniqueGuarded), and its checks report the clash as SQLite would. Live
 * notices after commit: one per rack touched, one fleet-wide, the summary event.
 */
export async function enrollRows(
  d: Domain,
  rows: EnrollRow[],
  actor: Actor,
  opts: CheckOptions & { dryRun: boolean; source: string },
): Promise<CheckedRows & { ids: number[] }> {
  const store = storeOf(d);
  const result = await uniqueGuarded(store, () =>
    store.transaction(async (tx) => {
      const checked = await checkEnrollRows(d, store, tx, rows, opts);
      if (checked.errors.length || opts.dryRun) return { ...checked, written: null };
      return { ...checked, written: await insertRows(d, store, tx, checked, actor, opts.source) };
    }),
  );
  const { written, ...checked } = result;
  if (!written) return { ...checked, ids: [] };
  const { ids, racks, event } = written;
  for (const rackId of racks) d.bus.publish({ type: "rack.changed", rackId });
  d.bus.publish({ type: "machines.bulk", count: ids.length });
  d.bus.publish({ type: "event.created", event });
  return { ...checked, ids };
}

const ENROLL_FIELDS = Object.keys(machineEnrollSchema.shape);

export interface BulkEnrollResult {
  ok: boolean;
  dryRun: boolean;
  /** How many machines were enrolled (0 on a dry run or a refusal). */
  enrolled: number;
  /** Their ids, in input order. */
  ids: number[];
  errors: ErrorDetail[];
}

/**
 * `machines.bulkEnroll`: the machines of `machines.enroll`, many at once, with the CSV import's checks and
 * all-or-nothing rule. Rows are numbered from 1 in errors. Unknown fields are refused (a misspelt field is not dropped).
 * @throws AppError ROWS_INVALID when not a dry run and any row is bad (details name row and field)
 */
export async function bulkEnroll(d: Domain, items: unknown[], actor: Actor, dryRun: boolean): Promise<BulkEnrollResult> {
  const rows: EnrollRow[] = items.map((item, i) => {
    const row = i + 1;
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      return { row, candidate: null, errors: [{ row, message: "A machine must be a JSON object" }] };
    }
    const candidate = item as Record<string, unknown>;
    const errors = Object.keys(candidate)
      .filter((k) => !ENROLL_FIELDS.includes(k))
      .map((k) => {
        const shown = JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k);
        return { row, field: k.slice(0, 64), message: `Unknown field ${shown}; the fields are ${ENROLL_FIELDS.join(", ")}` };
      });
    return { row, candidate, errors };
  });
  const r = await enrollRows(d, rows, actor, { dryRun, source: "JSON" });
  if (r.errors.length && !dryRun) {
    throw new AppError("ROWS_INVALID", `${r.errors.length} error(s); nothing was enrolled. ${describe(r.errors[0]!)}`, r.errors);
  }
  return { ok: r.errors.length === 0, dryRun, enrolled: r.ids.length, ids: r.ids, errors: r.errors };
}

/**
 * Enroll already parsed machines all-or-nothing (seeding, benches, the demo). Rows are numbered from 1.
 * @throws AppError ROWS_INVALID with every problem when any row fails
 */
export async function enrollMany(d: Domain, inputs: MachineEnroll[], actor: Actor): Promise<{ ids: number[] }> {
  const r = await enrollRows(d, inputs.map((input, i) => ({ row: i + 1, candidate: { ...input } })), actor, { dryRun: false, source: "API" });
  if (r.errors.length) throw new AppError("ROWS_INVALID", `${r.errors.length} error(s); nothing was enrolled. ${describe(r.errors[0]!)}`, r.errors);
  return { ids: r.ids };
}
