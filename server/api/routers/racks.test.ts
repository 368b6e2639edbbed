import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectTrpcError, machineInput } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

let h: Harness;
let n = 0;
const enroll = (overrides: Parameters<typeof machineInput>[1]) => h.operator.machines.enroll(machineInput(++n, overrides));
const rackRow = async (id: number) => (await h.store.db.select().from(h.store.t.racks).where(eq(h.store.t.racks.id, id)))[0];

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("racks.create", () => {
  it("creates a rack with defaults and records an event", async () => {
    const published = h.published.length;
    const { id } = await h.operator.racks.create({ name: "r-default" });
    expect((await rackRow(id))).toMatchObject({ name: "r-default", heightU: 42, site: null, row: null });
    expect(h.published.slice(published)).toEqual([{ type: "rack.changed", rackId: id }]);
    const ev = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.kind, "rack.created"))).at(-1)!;
    expect(ev).toMatchObject({ actor: "user:operator", payload: { rackId: id } });
  });

  it("stores site and row, and empty text as null", async () => {
    const { id } = await h.operator.racks.create({ name: "r-site", site: " dc2 ", row: "", heightU: 24 });
    expect((await rackRow(id))).toMatchObject({ site: "dc2", row: null, heightU: 24 });
  });

  it("refuses a duplicate name with CONFLICT", async () => {
    await h.operator.racks.create({ name: "r-dup" });
    const { shape } = await expectTrpcError(h.operator.racks.create({ name: "r-dup" }), "CONFLICT", "CONFLICT");
    expect(shape.data.details).toContainEqual(expect.objectContaining({ field: "name" }));
    expect((await h.store.db.select({ n: count() }).from(h.store.t.racks).where(eq(h.store.t.racks.name, "r-dup")))[0]!.n).toBe(1);
  });

  it.each([
    ["name", { name: "" }],
    ["name", { name: "../etc" }],
    ["name", { name: "has space" }],
    ["heightU", { name: "r-zero", heightU: 0 }],
    ["heightU", { name: "r-huge", heightU: 61 }],
    ["heightU", { name: "r-frac", heightU: 1.5 }],
  ] as const)("refuses a bad %s (%j) with BAD_REQUEST", async (field, input) => {
    const { shape } = await expectTrpcError(h.operator.racks.create(input), "BAD_REQUEST", "VALIDATION");
    expect(shape.message).toMatch(new RegExp(`^${field}: `));
  });
});

describe("racks.update", () => {
  it("renames, moves and resizes", async () => {
    const { id } = await h.operator.racks.create({ name: "r-upd", heightU: 20 });
    await h.operator.racks.update({ id, name: "r-upd2", site: "dc9", row: "Z", heightU: 30 });
    expect((await rackRow(id))).toMatchObject({ name: "r-upd2", site: "dc9", row: "Z", heightU: 30 });
  });

  it("changes only the fields given: a rename keeps the height", async () => {
    const { id } = await h.operator.racks.create({ name: "r-keep", site: "dc1", row: "A", heightU: 24 });
    await h.operator.racks.update({ id, name: "r-keep2" });
    expect((await rackRow(id))).toMatchObject({ name: "r-keep2", site: "dc1", row: "A", heightU: 24 });
    await h.operator.racks.update({ id, site: "dc3" });
    expect((await rackRow(id))).toMatchObject({ name: "r-keep2", site: "dc3", row: "A", heightU: 24 });
  });

  it("renames a tall rack holding a machine above U42", async () => {
    const { id } = await h.operator.racks.create({ name: "r-tall", heightU: 48 });
    await enroll({ rackId: id, uPosition: 46, uHeight: 2 });
    await h.operator.racks.update({ id, name: "r-tall2" });
    expect((await rackRow(id))).toMatchObject({ name: "r-tall2", heightU: 48 });
  });

  it("refuses to shrink below an installed machine (counting its height), allows down to its top U", async () => {
    const { id } = await h.operator.racks.create({ name: "r-shrink", heightU: 42 });
    await enroll({ rackId: id, uPosition: 20, uHeight: 2 }); // top U21
    const { shape } = await expectTrpcError(h.operator.racks.update({ id, heightU: 20 }), "BAD_REQUEST", "U_OUT_OF_RANGE");
    expect(shape.data.details).toContainEqual(expect.objectContaining({ field: "heightU" }));
    expect(shape.message).toContain("U21");
    expect((await rackRow(id))!.heightU).toBe(42);
    await h.operator.racks.update({ id, heightU: 21 });
    expect((await rackRow(id))!.heightU).toBe(21);
  });

  it("refuses a name taken by another rack, but accepts its own name", async () => {
    const a = await h.operator.racks.create({ name: "r-name-a" });
    const b = await h.operator.racks.create({ name: "r-name-b" });
    await expectTrpcError(h.operator.racks.update({ id: b.id, name: "r-name-a" }), "CONFLICT");
    await h.operator.racks.update({ id: a.id, name: "r-name-a", heightU: 40 });
    expect((await rackRow(a.id))).toMatchObject({ name: "r-name-a", heightU: 40 });
  });

  it("gives NOT_FOUND for an unknown rack", async () => {
    await expectTrpcError(h.operator.racks.update({ id: 99999, name: "x" }), "NOT_FOUND", "RACK_NOT_FOUND");
  });
});

describe("racks.delete", () => {
  it("deletes an empty rack", async () => {
    const { id } = await h.operator.racks.create({ name: "r-empty" });
    const published = h.published.length;
    await h.operator.racks.delete({ id });
    expect((await rackRow(id))).toBeUndefined();
    expect(h.published.slice(published)).toEqual([{ type: "rack.deleted", rackId: id }]);
  });

  it("refuses to delete a rack with machines: RACK_NOT_EMPTY → CONFLICT", async () => {
    const { id } = await h.operator.racks.create({ name: "r-full" });
    const m = await enroll({ rackId: id, uPosition: 1 });
    const { shape } = await expectTrpcError(h.operator.racks.delete({ id }), "CONFLICT", "RACK_NOT_EMPTY");
    expect(shape.message).toContain("1 machine");
    expect((await rackRow(id))).toBeDefined();
    // Once emptied, it goes.
    await h.operator.machines.delete({ id: m.id });
    await h.operator.racks.delete({ id });
    expect((await rackRow(id))).toBeUndefined();
  });

  it("gives NOT_FOUND for an unknown rack", async () => {
    await expectTrpcError(h.operator.racks.delete({ id: 99999 }), "NOT_FOUND", "RACK_NOT_FOUND");
  });
});

describe("racks.list and racks.elevations", () => {
  let full: number;
  let empty: number;
  let ids: number[];
  beforeAll(async () => {
    full = (await h.operator.racks.create({ name: "occ-full", site: "dc1", heightU: 10 })).id;
    empty = (await h.operator.racks.create({ name: "occ-empty", heightU: 10 })).id;
    ids = [
      (await enroll({ rackId: full, uPosition: 1, uHeight: 2 })).id,
      (await enroll({ rackId: full, uPosition: 5 })).id,
      (await enroll({ rackId: full, uPosition: 7, uHeight: 4 })).id,
    ];
    await enroll({}); // unracked: counted nowhere
  });

  it("lists racks by name with machine count and used U", async () => {
    const list = await h.viewer.racks.list();
    const names = list.map((r) => r.name);
    expect(names).toEqual([...names].sort());
    expect(list.find((r) => r.id === full)).toEqual({
      id: full,
      name: "occ-full",
      site: "dc1",
      row: null,
      heightU: 10,
      machineCount: 3,
      usedU: 7,
    });
    expect(list.find((r) => r.id === empty)).toMatchObject({ machineCount: 0, usedU: 0 });
  });

  it("draws elevations with each machine's slot and state", async () => {
    const [elev] = await h.viewer.racks.elevations({ rackIds: [full] });
    expect(elev).toMatchObject({ id: full, name: "occ-full", machineCount: 3, usedU: 7, heightU: 10 });
    const slots = elev!.machines.map((m) => [m.id, m.uPosition, m.uHeight, m.state]).sort((a, b) => Number(a[1]) - Number(b[1]));
    expect(slots).toEqual([
      [ids[0], 1, 2, "enrolled"],
      [ids[1], 5, 1, "enrolled"],
      [ids[2], 7, 4, "enrolled"],
    ]);
    expect(elev!.machines[0]).toHaveProperty("bootMac");
    expect(elev!.machines[0]).toHaveProperty("ip");
  });

  it("returns every rack without a filter, empty racks with no machines", async () => {
    const all = await h.viewer.racks.elevations();
    expect(all.length).toBe((await h.viewer.racks.list()).length);
    expect(all.find((r) => r.id === empty)!.machines).toEqual([]);
    const none = await h.viewer.racks.elevations({ rackIds: [empty] });
    expect(none.map((r) => r.id)).toEqual([empty]);
  });

  it("follows state changes and moves", async () => {
    await h.operator.machines.action({ id: ids[1]!, action: "manage" });
    await h.operator.machines.update({ id: ids[1]!, rackId: empty, uPosition: 3 });
    const rs = await h.viewer.racks.elevations({ rackIds: [full, empty] });
    const f = rs.find((r) => r.id === full)!;
    const e = rs.find((r) => r.id === empty)!;
    expect(f.machines.map((m) => m.id)).not.toContain(ids[1]);
    expect(e.machines).toEqual([expect.objectContaining({ id: ids[1], uPosition: 3, state: "manageable" })]);
    expect(f).toMatchObject({ machineCount: 2, usedU: 6 });
    expect(e).toMatchObject({ machineCount: 1, usedU: 1 });
  });
});
