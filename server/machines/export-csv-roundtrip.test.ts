/**
 * CSV export → import round trip of the boot NIC's network (issue 14). SQLite only: the CSV import and enrollment
 * into subnets are not on the Store yet (server/machines/csv.ts). The export on both stores: export-csv.test.ts.
 */
import Papa from "papaparse";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alias } from "drizzle-orm/sqlite-core";
import { machines, nics, subnets } from "../db/schema";
import { storeOf } from "../db/store";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { machinesCsv } from "./export-csv";
import { importCsv } from "./csv";

const subnetsAlias = alias(subnets, "subnets6");

const parse = (text: string) => Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true }).data;
const exportAll = async (h: Harness, f: Parameters<typeof machinesCsv>[1], chunk?: number) => {
  let out = "";
  for await (const c of machinesCsv(storeOf({ db: h.db }), f, chunk)) out += c;
  return out;
};

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

    const csv = await exportAll(h, { sort: "name", dir: "asc" });
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
    expect(parse(await exportAll(other, { sort: "name", dir: "asc" })).map((x) => [x.name, x.ip, x.subnet, x.address_mode])).toEqual(rows.map((x) => [x.name, x.ip, x.subnet, x.address_mode]));
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
