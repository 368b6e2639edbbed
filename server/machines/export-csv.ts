/**
 * The machine list as CSV (the table's current filter and sort), produced in chunks so a large fleet streams.
 * Every cell is neutralised against spreadsheet formula injection: a value starting with = + - @, a tab or a CR
 * gets a leading ' (OWASP's advice), and cells with a comma, quote or line break are quoted ("" doubled).
 */
import { inArray } from "drizzle-orm";
import type { MachineFilter, SortField } from "../../lib/schemas";
import type { Db } from "../db/client";
import { machines } from "../db/schema";
import { listMachines } from "./queries";

export const CSV_EXPORT_COLUMNS = [
  "name",
  "state",
  "power",
  "maintenance",
  "rack",
  "u_position",
  "ip",
  "mac",
  "os_profile",
  "firmware",
  "boot_firmware",
  "bmc_reachable",
  "cpu_model",
  "memory_gib",
  "disks",
  "last_error",
] as const;

/** One CSV cell: formula-neutralised, quoted when needed. */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

interface Inventory {
  cpu?: { model?: unknown };
  memoryBytes?: unknown;
  disks?: unknown;
}

/** The CSV text of the matching machines, one chunk per `chunk` rows (header first). */
export function* machinesCsv(
  db: Db,
  opts: MachineFilter & { sort: SortField; dir: "asc" | "desc" },
  chunk = 1000,
): Generator<string> {
  yield `${CSV_EXPORT_COLUMNS.join(",")}\r\n`;
  for (let page = 1; ; page++) {
    const { rows, total } = listMachines(db, { ...opts, page, pageSize: chunk });
    if (!rows.length) return;
    const inv = new Map(
      db
        .select({ id: machines.id, inventory: machines.inventory })
        .from(machines)
        .where(inArray(machines.id, rows.map((r) => r.id)))
        .all()
        .map((r) => [r.id, (r.inventory ?? {}) as Inventory]),
    );
    let out = "";
    for (const r of rows) {
      const i = inv.get(r.id) ?? {};
      const mem = typeof i.memoryBytes === "number" ? Math.round((i.memoryBytes / 2 ** 30) * 10) / 10 : null;
      const cells = [
        r.name,
        r.state,
        r.powerState,
        r.maintenance,
        r.rackName,
        r.uPosition,
        r.ip,
        r.bootMac,
        r.osProfileName,
        r.firmware,
        r.bootFirmware,
        r.bmcReachable,
        typeof i.cpu?.model === "string" ? i.cpu.model : null,
        mem,
        Array.isArray(i.disks) ? i.disks.length : null,
        r.lastError,
      ];
      out += `${cells.map(csvCell).join(",")}\r\n`;
    }
    yield out;
    if (page * chunk >= total) return;
  }
}
