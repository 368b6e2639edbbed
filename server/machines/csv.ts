import Papa from "papaparse";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { CSV_COLUMNS, machineEnrollSchema, type MachineEnroll } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { osProfiles, racks, subnets } from "../db/schema";
import { describe, enrollMany, uniqueProblems, type UniqueKeys } from "./enroll";
import { checkPlacement } from "./placement";
import { bmcAddressProblem } from "../../lib/bmc-address";
import { isIPv4, normalizeMac } from "../../lib/net";

const MAX_ROWS = 10_000;

/** What the import dialog previews: each row as it will be enrolled (no password). */
export interface CsvPreviewRow {
  row: number;
  name: string;
  rack: string | null;
  uPosition: number | null;
  mac: string;
  ip: string | null;
  bmcAddress: string | null;
  /** The OS profile's name (os_profile column). */
  osProfile: string | null;
}

export interface CsvImportResult {
  ok: boolean;
  dryRun: boolean;
  rows: CsvPreviewRow[];
  errors: ErrorDetail[];
  imported: number;
}

// Field names in errors are the CSV's own column names.
const FIELD_TO_COLUMN: Record<string, string> = {
  name: "name",
  rackId: "rack",
  uPosition: "u_position",
  uHeight: "u_height",
  bootMac: "mac",
  ip: "ip",
  "bmc.address": "bmc_address",
  "bmc.port": "bmc_port",
  "bmc.username": "bmc_user",
  "bmc.password": "bmc_password",
  "bmc.driver": "bmc_driver",
  osProfileId: "os_profile",
  "network.subnetId": "subnet",
  "network.addressMode": "address_mode",
};

/** The values of a raw row that must be unique, normalized as enrollment stores them (null where unusable). */
function uniqueKeysOf(raw: Record<string, string>): UniqueKeys & { name: string | null; mac: string | null; ip: string | null } {
  const port = intOrUndefined(raw.bmc_port);
  const address = raw.bmc_address?.toLowerCase() ?? "";
  return {
    name: raw.name ? raw.name.toLowerCase() : null,
    mac: raw.mac ? normalizeMac(raw.mac) : null,
    ip: raw.ip && isIPv4(raw.ip) ? raw.ip : null,
    bmc:
      address && !bmcAddressProblem(address) && (port === undefined || (Number.isInteger(port) && port >= 1 && port <= 65535))
        ? { driver: raw.bmc_driver || "ipmitool", address, port: port ?? 623 }
        : null,
  };
}

const intOrUndefined = (s: string | undefined) => (s === undefined || s === "" ? undefined : /^-?\d+$/.test(s) ? Number(s) : NaN);

/**
 * Import machines from CSV, all-or-nothing. Rows are numbered as data rows (the header is not a row).
 * With dryRun, everything is checked (against the database too) and nothing is written.
 * @throws AppError CSV_INVALID when not a dry run and any row is bad (details name row and field)
 */
export function importCsv(d: Domain, csv: string, actor: Actor, dryRun: boolean): CsvImportResult {
  const errors: ErrorDetail[] = [];
  const parsed = Papa.parse<Record<string, string>>(csv.replace(/^\uFEFF/, ""), {
    header: true,
    skipEmptyLines: "greedy",
    transformHeader: (h) => h.trim().toLowerCase().replace(/[\s-]+/g, "_"),
    transform: (v) => v.trim(),
  });
  const headers = parsed.meta.fields ?? [];
  const unknown = headers.filter((h) => !(CSV_COLUMNS as readonly string[]).includes(h));
  const missing = ["name", "mac"].filter((h) => !headers.includes(h));
  if (missing.length || unknown.length) {
    const msg = [
      missing.length ? `missing column(s) ${missing.join(", ")}` : "",
      unknown.length ? `unknown column(s) ${unknown.join(", ")}` : "",
    ]
      .filter(Boolean)
      .join("; ");
    return fail(dryRun, [{ row: 0, field: "header", message: `${msg}. Columns: ${CSV_COLUMNS.join(", ")}` }]);
  }
  for (const e of parsed.errors) errors.push({ row: (e.row ?? 0) + 1, message: e.message });
  if (parsed.data.length === 0) return fail(dryRun, [{ row: 0, message: "The CSV has no data rows" }]);
  if (parsed.data.length > MAX_ROWS) return fail(dryRun, [{ row: 0, message: `At most ${MAX_ROWS} rows per import` }]);

  const rackIds = new Map(d.db.select({ id: racks.id, name: racks.name }).from(racks).all().map((r) => [r.name, r.id]));
  const profileIds = new Map(d.db.select({ id: osProfiles.id, name: osProfiles.name }).from(osProfiles).all().map((p) => [p.name, p.id]));
  const subnetIds = new Map(d.db.select({ id: subnets.id, name: subnets.name }).from(subnets).all().map((p) => [p.name, p.id]));
  const inputs: MachineEnroll[] = [];
  const rowNumbers: number[] = [];
  const preview: CsvPreviewRow[] = [];
  // What each earlier row of the file claims: a value clashing with one is reported as a duplicate within the file.
  const seen = { name: new Map<string, number>(), mac: new Map<string, number>(), bmc: new Map<string, number>() };
  /** Machine IPs and BMC addresses share one space: an address is one host's. */
  const addresses = new Map<string, { row: number; what: "IP" | "BMC address" }>();
  parsed.data.forEach((raw, i) => {
    const row = i + 1;
    const rowErrors: ErrorDetail[] = [];
    const add = (field: string, message: string) => rowErrors.push({ row, field: FIELD_TO_COLUMN[field] ?? field, message });
    let rackId: number | undefined;
    let rackUnknown = false;
    if (raw.rack) {
      rackId = rackIds.get(raw.rack);
      rackUnknown = !rackId;
      if (rackUnknown) add("rackId", `No rack named "${raw.rack}"`);
    }
    let osProfileId: number | undefined;
    if (raw.os_profile) {
      osProfileId = profileIds.get(raw.os_profile);
      if (!osProfileId) add("osProfileId", `No OS profile named "${raw.os_profile}"`);
    }
    let subnetId: number | undefined;
    if (raw.subnet) {
      subnetId = subnetIds.get(raw.subnet);
      if (!subnetId) add("network.subnetId", `No subnet named ${JSON.stringify(raw.subnet.slice(0, 64))}`);
    }
    const hasBmc = Boolean(raw.bmc_address || raw.bmc_user || raw.bmc_password);
    const candidate = {
      osProfileId,
      name: raw.name ?? "",
      rackId,
      uPosition: intOrUndefined(raw.u_position),
      uHeight: intOrUndefined(raw.u_height),
      bootMac: raw.mac ?? "",
      ip: raw.ip || null,
      ...((raw.subnet || raw.address_mode) && { network: { subnetId, addressMode: raw.address_mode ? raw.address_mode.toLowerCase() : undefined } }),
      bmc: hasBmc
        ? {
            driver: raw.bmc_driver || undefined,
            address: raw.bmc_address ?? "",
            port: intOrUndefined(raw.bmc_port),
            username: raw.bmc_user ?? "",
            password: raw.bmc_password ?? "",
          }
        : null,
    };
    // Every problem of the row at once: its syntax (each field), duplicates within the file, clashes with the database.
    const r = machineEnrollSchema.safeParse(candidate);
    if (!r.success) {
      for (const issue of r.error.issues) {
        const message = issue.code === "invalid_type" && /NaN|nan/.test(issue.message) ? "must be a whole number" : issue.message;
        add(issue.path.join("."), message);
      }
    }
    const keys = uniqueKeysOf(raw);
    const dup = (map: Map<string, number>, key: string | null, field: string, what: string) => {
      if (!key) return;
      const first = map.get(key);
      if (first !== undefined) add(field, `${what} is also on row ${first} of this file`);
      else map.set(key, row);
    };
    dup(seen.name, keys.name, "name", `Name ${keys.name}`);
    dup(seen.mac, keys.mac, "bootMac", `MAC ${keys.mac}`);
    dup(seen.bmc, keys.bmc && keys.bmc.driver !== "fake" ? `${keys.bmc.address}:${keys.bmc.port}` : null, "bmc.address", `BMC address ${keys.bmc?.address}:${keys.bmc?.port}`);
    const claim = (address: string | null | undefined, what: "IP" | "BMC address", field: string) => {
      if (!address) return;
      const first = addresses.get(address);
      if (first && first.row !== row && !(first.what === "BMC address" && what === "BMC address")) {
        add(field, `${what} ${address} is also the ${first.what} on row ${first.row} of this file`);
      } else if (!first) addresses.set(address, { row, what });
    };
    claim(keys.ip, "IP", "ip");
    if (keys.bmc && keys.bmc.driver !== "fake") claim(keys.bmc.address, "BMC address", "bmc.address");
    for (const det of uniqueProblems(d.db, keys)) add(det.field ?? "", det.message);
    if (r.success && !rackUnknown) {
      preview.push({
        row,
        name: r.data.name,
        rack: raw.rack || null,
        uPosition: r.data.uPosition ?? null,
        mac: r.data.bootMac,
        ip: r.data.ip ?? null,
        bmcAddress: r.data.bmc?.address ?? null,
        osProfile: osProfileId ? raw.os_profile! : null,
      });
      if (!rowErrors.length) {
        // Checked together below, in file order: placement against the database and the rows before it.
        inputs.push(r.data);
        rowNumbers.push(row);
      } else {
        // Placement of a row that fails otherwise, against the database alone (reported in the same pass).
        try {
          checkPlacement(d.db, r.data);
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          for (const det of err.details.length ? err.details : [{ message: err.message }]) add(det.field ?? "uPosition", det.message);
        }
      }
    }
    errors.push(...rowErrors);
  });

  // Database checks (uniqueness, U overlap) run even when some rows failed syntax, so one pass shows every error.
  try {
    enrollMany(d, inputs, actor, { rowNumbers, dryRun: true });
  } catch (err) {
    if (!(err instanceof AppError) || err.code !== "CSV_INVALID") throw err;
    for (const det of err.details) errors.push({ ...det, field: det.field ? (FIELD_TO_COLUMN[det.field] ?? det.field) : undefined });
  }
  errors.sort((a, b) => (a.row ?? 0) - (b.row ?? 0));
  if (errors.length) return fail(dryRun, errors, preview);
  if (dryRun) return { ok: true, dryRun, rows: preview, errors: [], imported: 0 };
  const { ids } = enrollMany(d, inputs, actor, { rowNumbers });
  return { ok: true, dryRun, rows: preview, errors: [], imported: ids.length };
}

function fail(dryRun: boolean, errors: ErrorDetail[], rows: CsvPreviewRow[] = []): CsvImportResult {
  if (!dryRun) {
    throw new AppError("CSV_INVALID", `${errors.length} error(s); nothing was imported. ${describe(errors[0]!)}`, errors);
  }
  return { ok: false, dryRun, rows, errors, imported: 0 };
}
