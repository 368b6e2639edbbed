/**
 * The machine list as CSV (the table's current filter and sort), produced in chunks so a large fleet streams: each
 * chunk is one keyset page of the list (server/machines/queries.ts) through the Store, on either database, so only a
 * chunk's rows are in memory at once and a machine added or removed during the export neither repeats nor shifts a row.
 * Every cell is neutralised against spreadsheet formula injection: a value starting with = + - @, a tab or a CR
 * gets a leading ' (OWASP's advice), and cells with a comma, quote or line break are quoted ("" doubled).
 */
import { and, eq, inArray } from "drizzle-orm";
import { CSV_COLUMNS, type MachineFilter, type SortField } from "../../lib/schemas";
import type { Store } from "../db/store";
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
  // The boot NIC's subnet (by name) and address mode, as the CSV import reads them (issue 14): an export imports back
  // to the same network (an auto address is allocated again; pin it with static to keep it whatever else is taken).
  "subnet",
  "address_mode",
] as const;

/** Export columns the import does not read (the machine's state, inventory, …): accepted there and ignored. */
export const CSV_EXPORT_ONLY_COLUMNS: readonly string[] = CSV_EXPORT_COLUMNS.filter((c) => !(CSV_COLUMNS as readonly string[]).includes(c));

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
export async function* machinesCsv(
  store: Store,
  opts: MachineFilter & { sort: SortField; dir: "asc" | "desc" },
  chunk = 1000,
): AsyncGenerator<string> {
  yield `${CSV_EXPORT_COLUMNS.join(",")}\r\n`;
  const { machines, nics, subnets } = store.t;
  let subnetNames: Map<number, string> | null = null;
  let cursor: string | undefined;
  for (;;) {
    const { rows, nextCursor } = await listMachines(store, { ...opts, page: 1, pageSize: chunk, cursor });
    if (!rows.length) return;
    const ids = rows.map((r) => r.id);
    const boot = new Map(
      (
        await store.db
          .select({ machineId: nics.machineId, subnetId: nics.subnetId, subnet6Id: nics.subnet6Id, addressMode: nics.addressMode, ipv6Mode: nics.ipv6Mode })
          .from(nics)
          .where(and(inArray(nics.machineId, ids), eq(nics.isBoot, true)))
      ).map((n) => [n.machineId, n]),
    );
    subnetNames ??= new Map((await store.db.select({ id: subnets.id, name: subnets.name }).from(subnets)).map((s) => [s.id, s.name]));
    const inv = new Map(
      (await store.db.select({ id: machines.id, inventory: machines.inventory }).from(machines).where(inArray(machines.id, ids))).map((r) => [
        r.id,
        (r.inventory ?? {}) as Inventory,
      ]),
    );
    let out = "";
    for (const r of rows) {
      const i = inv.get(r.id) ?? {};
      const mem = typeof i.memoryBytes === "number" ? Math.round((i.memoryBytes / 2 ** 30) * 10) / 10 : null;
      const net = bootNetwork(boot.get(r.id), subnetNames);
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
        net.subnet,
        net.addressMode,
      ];
      out += `${cells.map(csvCell).join(",")}\r\n`;
    }
    yield out;
    if (!nextCursor) return;
    cursor = nextCursor;
  }
}

/**
 * The boot NIC's subnet and address mode as the import's `subnet` and `address_mode` cells: its IPv4 subnet and mode;
 * else its IPv6 subnet (the import gives a NIC in an IPv6 subnet the IPv6 mode auto, or dhcp/none).
 */
function bootNetwork(
  n: { subnetId: number | null; subnet6Id: number | null; addressMode: string | null; ipv6Mode: string | null } | undefined,
  names: Map<number, string>,
): { subnet: string | null; addressMode: string | null } {
  if (!n) return { subnet: null, addressMode: null };
  if (n.subnetId !== null) return { subnet: names.get(n.subnetId) ?? null, addressMode: n.addressMode };
  if (n.subnet6Id !== null) return { subnet: names.get(n.subnet6Id) ?? null, addressMode: n.ipv6Mode === "auto" ? "auto" : n.ipv6Mode === "none" ? "none" : "dhcp" };
  return { subnet: null, addressMode: n.addressMode };
}
