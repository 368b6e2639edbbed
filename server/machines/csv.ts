import Papa from "papaparse";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { CSV_COLUMNS } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { storeOf } from "../db/store";
import { enrollRows, MAX_BULK_ROWS, type EnrollRow } from "./bulk-enroll";
import { describe } from "./enroll";
import { CSV_EXPORT_ONLY_COLUMNS } from "./export-csv";

const MAX_ROWS = MAX_BULK_ROWS;

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

const intOrUndefined = (s: string | undefined) => (s === undefined || s === "" ? undefined : /^-?\d+$/.test(s) ? Number(s) : NaN);

/**
 * Import machines from CSV, all-or-nothing. Rows are numbered as data rows (the header is not a row).
 * With dryRun, everything is checked (against the database too) and nothing is written.
 * @throws AppError CSV_INVALID when not a dry run and any row is bad (details name row and field)
 */
export async function importCsv(d: Domain, csv: string, actor: Actor, dryRun: boolean): Promise<CsvImportResult> {
  const errors: ErrorDetail[] = [];
  const parsed = Papa.parse<Record<string, string>>(csv.replace(/^\uFEFF/, ""), {
    header: true,
    skipEmptyLines: "greedy",
    transformHeader: (h) => h.trim().toLowerCase().replace(/[\s-]+/g, "_"),
    transform: (v) => v.trim(),
  });
  const headers = parsed.meta.fields ?? [];
  // An export's own columns (state, inventory, …) are accepted and ignored: an export imports back.
  const unknown = headers.filter((h) => !(CSV_COLUMNS as readonly string[]).includes(h) && !CSV_EXPORT_ONLY_COLUMNS.includes(h));
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

  // Names to ids, read before the transaction: a rack, profile or subnet gone meanwhile is refused by its checks.
  const { db, t } = storeOf(d);
  const rackIds = new Map((await db.select({ id: t.racks.id, name: t.racks.name }).from(t.racks)).map((r) => [r.name, r.id]));
  const profileIds = new Map((await db.select({ id: t.osProfiles.id, name: t.osProfiles.name }).from(t.osProfiles)).map((p) => [p.name, p.id]));
  const subnetIds = new Map((await db.select({ id: t.subnets.id, name: t.subnets.name }).from(t.subnets)).map((p) => [p.name, p.id]));
  const rows: EnrollRow[] = parsed.data.map((raw, i) => {
    const row = i + 1;
    const pre: ErrorDetail[] = [];
    let rackId: number | undefined;
    if (raw.rack) {
      rackId = rackIds.get(raw.rack);
      if (!rackId) pre.push({ row, field: "rack", message: `No rack named "${raw.rack}"` });
    }
    let osProfileId: number | undefined;
    if (raw.os_profile) {
      osProfileId = profileIds.get(raw.os_profile);
      if (!osProfileId) pre.push({ row, field: "os_profile", message: `No OS profile named "${raw.os_profile}"` });
    }
    let subnetId: number | undefined;
    if (raw.subnet) {
      subnetId = subnetIds.get(raw.subnet);
      if (!subnetId) pre.push({ row, field: "subnet", message: `No subnet named ${JSON.stringify(raw.subnet.slice(0, 64))}` });
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
    return { row, candidate, errors: pre, rackUnknown: Boolean(raw.rack) && !rackId };
  });

  // Every problem of every row in one pass (enrollment's shared checks); a file with parse errors is only checked.
  const r = await enrollRows(d, rows, actor, {
    dryRun: dryRun || errors.length > 0,
    source: "CSV import",
    field: (f) => FIELD_TO_COLUMN[f] ?? f,
    batch: "this file",
  });
  const preview: CsvPreviewRow[] = [];
  r.parsed.forEach((m, i) => {
    const raw = parsed.data[i]!;
    if (!m || rows[i]!.rackUnknown) return;
    preview.push({
      row: i + 1,
      name: m.name,
      rack: raw.rack || null,
      uPosition: m.uPosition ?? null,
      mac: m.bootMac,
      ip: m.ip ?? null,
      bmcAddress: m.bmc?.address ?? null,
      osProfile: m.osProfileId ? raw.os_profile! : null,
    });
  });
  errors.push(...r.errors);
  errors.sort((a, b) => (a.row ?? 0) - (b.row ?? 0));
  if (errors.length) return fail(dryRun, errors, preview);
  return { ok: true, dryRun, rows: preview, errors: [], imported: r.ids.length };
}

function fail(dryRun: boolean, errors: ErrorDetail[], rows: CsvPreviewRow[] = []): CsvImportResult {
  if (!dryRun) {
    throw new AppError("CSV_INVALID", `${errors.length} error(s); nothing was imported. ${describe(errors[0]!)}`, errors);
  }
  return { ok: false, dryRun, rows, errors, imported: 0 };
}
