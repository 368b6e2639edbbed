import { AppError, type ErrorDetail } from "../../lib/errors";
import { bmcAddressProblem } from "../../lib/bmc-address";
import { isIPv4, normalizeMac } from "../../lib/net";
import { machineEnrollSchema, type MachineEnroll } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { insertMany, insertManyReturning } from "../db/prepared";
import { bmcs, machines, nics } from "../db/schema";
import { recordEvent } from "../events/audit";
import { Allocator } from "../subnets/allocate";
import { bootAddressing, describe, insertBootNicAndBmc, machineRow, nicNetwork, profileMissing, uniqueProblems, type UniqueKeys } from "./enroll";
import { checkPlacementWith, type Occupant } from "./placement";

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
  boots: ReturnType<typeof bootAddressing>[];
  /** Holds the batch's addresses in memory; insertRows records and flushes them. */
  allocator: Allocator;
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
 * Check every row (nothing is written). Run it inside the transaction that writes the rows, so the checks hold when they are written.
 */
export function checkEnrollRows(d: Domain, rows: EnrollRow[], opts: CheckOptions = {}): CheckedRows {
  const field = opts.field ?? ((f: string) => f);
  const batch = opts.batch ?? "this request";
  let q = placementLookups.get(d.db.$client);
  if (!q) placementLookups.set(d.db.$client, (q = preparePlacement(d.db)));
  const rackById = new Map(q.racks.all().map((r) => [r.id, r]));
  const profileIds = new Set(q.profiles.all().map((p) => p.id));
  const clashIn = (rackId: number, bottom: number, top: number) => q.clash.get(rackId, top, bottom);
  // The U ranges taken by the rows accepted so far, per rack.
  const taken = new Map<number, Occupant[]>();
  const clashWithBatch = (rackId: number, bottom: number, top: number) =>
    clashIn(rackId, bottom, top) ?? taken.get(rackId)?.find((o) => o.u! <= top && o.u! + o.h - 1 >= bottom);

  const errors: ErrorDetail[] = [];
  const parsed: (MachineEnroll | null)[] = [];
  const inputs: MachineEnroll[] = [];
  const inputRows: number[] = [];
  // What each earlier row claims: a value clashing with one is reported as a duplicate within the batch.
  const seen = { name: new Map<string, number>(), mac: new Map<string, number>(), bmc: new Map<string, number>() };
  /** Machine IPs and BMC addresses share one space: an address is one host's. */
  const addresses = new Map<string, { row: number; what: "IP" | "BMC address" }>();

  for (const r of rows) {
    const row = r.row;
    const rowErrors: ErrorDetail[] = [...(r.errors ?? [])];
    const add = (f: string, message: string) => rowErrors.push({ row, field: field(f), message });
    if (!r.candidate) {
      parsed.push(null);
      errors.push(...rowErrors);
      continue;
    }
    const p = machineEnrollSchema.safeParse(r.candidate);
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
    for (const det of uniqueProblems(d.db, keys)) add(det.field ?? "", det.message);
    if (!p.success || r.rackUnknown) {
      errors.push(...rowErrors);
      continue;
    }
    const input = p.data;
    // A row that passes so far is placed against the database and the rows accepted before it; a failing row
    // against the database alone (reported in the same pass).
    const ok = rowErrors.length === 0;
    try {
      checkPlacementWith(input, (id) => rackById.get(id), ok ? clashWithBatch : clashIn);
      if (input.osProfileId != null && !profileIds.has(input.osProfileId)) throw profileMissing(input.osProfileId);
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
  const allocator = new Allocator(d.db);
  // Without a row naming a subnet no subnet is ever loaded, and noting taken addresses would change nothing.
  if (inputs.some((input) => input.network?.subnetId)) {
    inputs.forEach((input, i) => {
      const n = input.network;
      if (n?.subnetId && n.addressMode === "static" && input.ip) allocator.hold(n.subnetId, input.ip, inputRows[i]!);
      else if (!n?.subnetId && input.ip) allocator.noteTaken(input.ip);
      if (input.bmc) allocator.noteTaken(input.bmc.address);
    });
  }
  const boots: ReturnType<typeof bootAddressing>[] = [];
  const kept: MachineEnroll[] = [];
  inputs.forEach((input, i) => {
    const row = inputRows[i]!;
    try {
      boots.push(bootAddressing(allocator, input.network, input.ip ?? null, row));
      kept.push(input);
    } catch (err) {
      for (const det of detailsOf(err)) errors.push({ row, field: field(det.field ?? "network.subnetId"), message: det.message });
    }
  });
  errors.sort((a, b) => (a.row ?? 0) - (b.row ?? 0));
  return { parsed, errors, inputs: kept, boots, allocator };
}

const BMC_FIELDS = ["machineId", "driver", "address", "port", "username", "passwordEncrypted", "privilege", "cipherSuite"];

/** Write checked rows inside an open transaction; returns their ids in row order and the summary event. */
function insertRows(d: Domain, checked: CheckedRows, actor: Actor, source: string) {
  const { inputs, boots, allocator } = checked;
  const now = new Date();
  const ids: number[] = [];
  // NIC and BMC rows of the batch, grouped by their fields, go in multi-row inserts after the machines. A NIC whose
  // address was allocated from a subnet needs its own id for the allocation: those go one by one, as enroll.ts does.
  const nicRows = new Map<string, Record<string, unknown>[]>();
  const bmcRows: Record<string, unknown>[] = [];
  // Machines in multi-row inserts too, their new ids keyed by name (unique, checked above).
  const machineRows = inputs.map((input) => machineRow(input, now));
  const fields = Object.keys(machineRows[0] ?? {});
  const idByName = new Map<unknown, number>();
  if (machineRows.length) for (const r of insertManyReturning(d.db, machines, fields, ["id", "name"])(machineRows)) idByName.set(r.name, Number(r.id));
  for (const [i, input] of inputs.entries()) {
    const boot = boots[i]!;
    const id = idByName.get(machineRows[i]!.name);
    if (id === undefined) throw new Error(`bulk enrollment: no id returned for ${input.name}`);
    ids.push(id);
    if (boot.allocated) {
      insertBootNicAndBmc(d, id, input, boot, allocator);
      continue;
    }
    // The same rows as insertBootNicAndBmc (enroll.ts) writes; bulk-enroll.test.ts compares both.
    const nic = { machineId: id, mac: input.bootMac, isBoot: true, ...nicNetwork(input.network), ...boot.columns };
    const key = Object.keys(nic).join(",");
    const group = nicRows.get(key);
    if (group) group.push(nic);
    else nicRows.set(key, [nic]);
    if (input.bmc) {
      bmcRows.push({
        machineId: id,
        driver: input.bmc.driver,
        address: input.bmc.address,
        port: input.bmc.port,
        username: input.bmc.username,
        passwordEncrypted: d.secrets.encrypt(input.bmc.password),
        privilege: input.bmc.privilege,
        cipherSuite: input.bmc.cipherSuite,
      });
    }
  }
  for (const [key, rows] of nicRows) insertMany(d.db, nics, key.split(","))(rows);
  if (bmcRows.length) insertMany(d.db, bmcs, BMC_FIELDS)(bmcRows);
  allocator.flush();
  const racks = [...new Set(inputs.flatMap((input) => (input.rackId != null ? [input.rackId] : [])))];
  // One event for the whole batch: an import of 10,000 is one operator action, not 10,000 audit rows.
  const event = recordEvent(d.db, {
    actor,
    kind: "machine.bulk_enrolled",
    message: `Enrolled ${inputs.length.toLocaleString("en")} machine${inputs.length === 1 ? "" : "s"} (${source})`,
    payload: { source, count: inputs.length, firstId: ids[0] ?? null, lastId: ids.at(-1) ?? null, rackIds: racks },
  });
  return { ids, racks, event };
}

/**
 * Check all rows and, when every row passes and this is not a dry run, enroll them, in one transaction. Live
 * notices after commit: one per rack touched, one fleet-wide, the summary event.
 */
export function enrollRows(
  d: Domain,
  rows: EnrollRow[],
  actor: Actor,
  opts: CheckOptions & { dryRun: boolean; source: string },
): CheckedRows & { ids: number[] } {
  const result = d.db.transaction(
    () => {
      const checked = checkEnrollRows(d, rows, opts);
      if (checked.errors.length || opts.dryRun) return { ...checked, ids: [] as number[], written: null };
      return { ...checked, written: insertRows(d, checked, actor, opts.source) };
    },
    { behavior: opts.dryRun ? "deferred" : "immediate" },
  );
  if (!result.written) return { ...result, ids: [] };
  const { ids, racks, event } = result.written;
  for (const rackId of racks) d.bus.publish({ type: "rack.changed", rackId });
  d.bus.publish({ type: "machines.bulk", count: ids.length });
  d.bus.publish({ type: "event.created", event });
  return { parsed: result.parsed, errors: result.errors, inputs: result.inputs, boots: result.boots, allocator: result.allocator, ids };
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
export function bulkEnroll(d: Domain, items: unknown[], actor: Actor, dryRun: boolean): BulkEnrollResult {
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
  const r = enrollRows(d, rows, actor, { dryRun, source: "JSON" });
  if (r.errors.length && !dryRun) {
    throw new AppError("ROWS_INVALID", `${r.errors.length} error(s); nothing was enrolled. ${describe(r.errors[0]!)}`, r.errors);
  }
  return { ok: r.errors.length === 0, dryRun, enrolled: r.ids.length, ids: r.ids, errors: r.errors };
}

/**
 * Enroll already parsed machines all-or-nothing (seeding, benches, the demo). Rows are numbered from 1.
 * @throws AppError ROWS_INVALID with every problem when any row fails
 */
export function enrollMany(d: Domain, inputs: MachineEnroll[], actor: Actor): { ids: number[] } {
  const r = enrollRows(d, inputs.map((input, i) => ({ row: i + 1, candidate: { ...input } })), actor, { dryRun: false, source: "API" });
  if (r.errors.length) throw new AppError("ROWS_INVALID", `${r.errors.length} error(s); nothing was enrolled. ${describe(r.errors[0]!)}`, r.errors);
  return { ids: r.ids };
}
