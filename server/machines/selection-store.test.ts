/**
 * A filter selection resolved through the Store (matchingIdsIn), on both databases (vitest projects sqlite and
 * postgres): every condition of the machines table's filter, hostile search text contained, and the same machines
 * as the list (listMachines) shows for the filter, in name order.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MachineFilter } from "../../lib/schemas";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { transition } from "./lifecycle";
import { listMachines } from "./queries";
import { matchingIdsIn } from "./selection";

let h: Harness;
const id: Record<string, number> = {};

beforeAll(async () => {
  h = createHarness();
  const rack = (await h.operator.racks.create({ name: "sel-rack" })).id;
  id.a = (await h.operator.machines.enroll(machineInput(1, { name: "web-01", rackId: rack, uPosition: 1 }))).id;
  id.b = (await h.operator.machines.enroll(machineInput(2, { name: "web-02" }))).id;
  id.c = (await h.operator.machines.enroll(machineInput(3, { name: "db-1" }))).id;
  id.d = (await h.operator.machines.enroll(machineInput(4, { name: "db-2" }))).id;
  await transition(h.domain, id.b, "manage", { actor: "test" });
  const { db, t } = h.store;
  const inv = (mem: number, disks: unknown, cpu: string) => ({ memoryBytes: mem * 2 ** 30, disks, cpu: { model: cpu } });
  await db.update(t.machines).set({ inventory: inv(64, [{}, {}], "AMD EPYC 7302") }).where(eq(t.machines.id, id.a));
  await db.update(t.machines).set({ inventory: inv(16, [{}], "Intel Xeon Gold") }).where(eq(t.machines.id, id.b));
  await db.update(t.machines).set({ inventory: inv(128, { not: "an array" }, "amd epyc 9654 (v_1%)"), maintenance: true, powerState: "on" }).where(eq(t.machines.id, id.c));
});
afterAll(() => h.close());

const names = (ids: number[]) => ids.map((x) => Object.keys(id).find((k) => id[k] === x));

describe("matchingIdsIn", () => {
  const cases: [string, MachineFilter, string[]][] = [
    ["everything, in name order", {}, ["c", "d", "a", "b"]],
    ["a state", { states: ["manageable"] }, ["b"]],
    ["a rack", { rackId: -1 }, []],
    ["power", { power: "on" }, ["c"]],
    ["maintenance", { maintenance: true }, ["c"]],
    ["not in maintenance", { maintenance: false }, ["d", "a", "b"]],
    ["name text, any case", { q: "WEB" }, ["a", "b"]],
    ["a literal % and _ in the search", { cpuModel: "_1%" }, ["c"]],
    ["% alone is no wildcard", { q: "%" }, []],
    ["an IP prefix", { q: "10.0.0.2" }, ["b"]],
    ["a full MAC in dashes", { q: "52-54-00-00-00-04" }, ["d"]],
    ["a partial MAC in dashes", { q: "52-54-00-00-00" }, ["c", "d", "a", "b"]],
    ["memory at least", { minMemoryGiB: 64 }, ["c", "a"]],
    ["disks at least (a non-array counts 0)", { minDisks: 2 }, ["a"]],
    ["zero disks matches every inventory", { minDisks: 0 }, ["c", "a", "b"]],
    ["CPU model text, any case", { cpuModel: "epyc" }, ["c", "a"]],
    ["combined", { cpuModel: "EPYC", maintenance: false }, ["a"]],
  ];
  it.each(cases)("%s", async (_, f, want) => {
    const { rackId } = f;
    const filter = rackId === -1 ? { rackId: (await h.store.db.select().from(h.store.t.racks))[0]!.id } : f;
    const got = await matchingIdsIn(h.store, filter);
    expect(names(got)).toEqual(rackId === -1 ? ["a"] : want);
    const listed = await listMachines(h.store, { ...filter, sort: "name", dir: "asc", page: 1, pageSize: 100 });
    expect(got).toEqual(listed.rows.map((r) => r.id));
    expect(listed.total).toBe(got.length);
  });

  it("hostile search text is matched literally or matches nothing; never an error", async () => {
    for (const q of ["'; DROP TABLE machines; --", "a\nb", "x\ry", "nul\u0000byte", "\\", "\\%", '"', "$(reboot)", "a;b&c", "../..", "é€😀", "LIKE", "x".repeat(100)]) {
      expect(await matchingIdsIn(h.store, { q })).toEqual([]);
      expect(await matchingIdsIn(h.store, { cpuModel: q })).toEqual([]);
    }
  });
});
