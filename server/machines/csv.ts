import Papa from "papaparse";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { CSV_COLUMNS, machineEnrollSchema, type MachineEnroll } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { racks } from "../db/schema";
import { describe, enrollMany } from "./enroll";

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
};

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
  const inputs: MachineEnroll[] = [];
  const rowNumbers: number[] = [];
  const preview: CsvPreviewRow[] = [];
  parsed.data.forEach((raw, i) => {
    const row = i + 1;
    let rackId: number | undefined;
    let rackUnknown = false;
    if (raw.rack) {
      rackId = rackIds.get(raw.rack);
      rackUnknown = !rackId;
      if (rackUnknown) errors.push({ row, field: "rack", message: `No rack named "${raw.rack}"` });
    }
    const hasBmc = Boolean(raw.bmc_address || raw.bmc_user || raw.bmc_password);
    const candidate = {
      name: raw.name ?? "",
      rackId,
      uPosition: intOrUndefined(raw.u_position),
      uHeight: intOrUndefined(raw.u_height),
      bootMac: raw.mac ?? "",
      ip: raw.ip || null,
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
    const r = machineEnrollSchema.safeParse(candidate);
    if (!r.success) {
      for (const issue of r.error.issues) {
        const key = issue.path.join(".");
        const message = issue.code === "invalid_type" && /NaN|nan/.test(issue.message) ? "must be a whole number" : issue.message;
        errors.push({ row, field: FIELD_TO_COLUMN[key] ?? key, message });
      }
      return;
    }
    // Placement cannot be checked against a rack that does not exist; the rack error already names the row.
    if (rackUnknown) return;
    inputs.push(r.data);
    rowNumbers.push(row);
    preview.push({
      row,
      name: r.data.name,
      rack: raw.rack || null,
      uPosition: r.data.uPosition ?? null,
      mac: r.data.bootMac,
      ip: r.data.ip ?? null,
      bmcAddress: r.data.bmc?.address ?? null,
    });
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
