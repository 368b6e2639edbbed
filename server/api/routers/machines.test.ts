import { count, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATE_LABELS, type MachineState } from "../../../lib/lifecycle";
import { driveTo, expectTrpcError, machineInput } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

let h: Harness;
let n = 100;
const next = () => ++n;

async function enroll(overrides: Parameters<typeof machineInput>[1] = {}) {
  const k = next();
  const input = machineInput(k, overrides);
  const { id } = await h.operator.machines.enroll(input);
  return { id, input };
}

async function drive(id: number, state: MachineState) {
  await driveTo(h.domain, id, state);
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("machines.enroll", () => {
  it.each([
    ["AA-BB-CC-DD-EE-01", "aa:bb:cc:dd:ee:01"],
    ["aabb.ccdd.ee02", "aa:bb:cc:dd:ee:02"],
    ["AA:BB:CC:DD:EE:03", "aa:bb:cc:dd:ee:03"],
    ["aabbccddee04", "aa:bb:cc:dd:ee:04"],
    ["  52:54:00:AB:CD:EF  ", "52:54:00:ab:cd:ef"],
  ])("stores MAC %s as %s", async (spelling, canonical) => {
    const { id } = await enroll({ bootMac: spelling });
    const m = await h.viewer.machines.get({ id });
    expect(m.bootMac).toBe(canonical);
    expect((await h.store.db.select().from(h.store.t.nics).where(eq(h.store.t.nics.machineId, id)))[0]!.mac).toBe(canonical);
  });

  it("flags a BMC address:port already used, and an IP that is another machine's BMC address (the fake driver has no address)", async () => {
    const bmc = { driver: "ipmitool" as const, address: "10.99.0.1", port: 6230, username: "admin", password: "secret" };
    const first = await enroll({ bmc });
    const { shape } = await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { bmc: { ...bmc, address: "10.99.0.1" } })), "CONFLICT", "CONFLICT");
    expect(shape.data.details).toEqual([{ field: "bmc.address", message: `BMC address 10.99.0.1:6230 belongs to ${first.input.name}'s BMC` }]);
    await enroll({ bmc: { ...bmc, port: 6231 } });
    const ipClash = await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { ip: "10.99.0.1" })), "CONFLICT");
    expect(ipClash.shape.data.details).toEqual([{ field: "ip", message: `IP 10.99.0.1 is the BMC address of ${first.input.name}` }]);
    await enroll({ bmc: { ...bmc, driver: "fake" } });
    await enroll({ bmc: { ...bmc, driver: "fake" } });
    await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { bmc: { ...bmc, port: 7000, password: "p".repeat(25) } })), "BAD_REQUEST", "VALIDATION");
    await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { bmc: { ...bmc, port: 7001, address: "10.43.1.999" } })), "BAD_REQUEST", "VALIDATION");
  });

  it("stores the name lower-case and records an enrolment event", async () => {
    const { id } = await enroll({ name: "Web-01.Example.COM" });
    const m = await h.viewer.machines.get({ id });
    expect(m.name).toBe("web-01.example.com");
    expect(m.state).toBe("enrolled");
    const ev = await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.machineId, id)).orderBy(h.store.t.events.id);
    expect(ev.map((e) => e.kind)).toEqual(["machine.enrolled"]);
    expect(ev[0]!.actor).toBe("user:operator");
  });

  it.each([
    ["bootMac", { bootMac: "not-a-mac" }, /not a MAC/],
    ["bootMac", { bootMac: "01:00:5e:00:00:01" }, /multicast/],
    ["bootMac", { bootMac: "00:00:00:00:00:00" }, /zero/],
    ["bootMac", { bootMac: "aa:bb:cc:dd:ee" }, /not a MAC/],
    ["ip", { ip: "10.0.0.256" }, /not an IPv4/],
    ["ip", { ip: "10.0.0.01" }, /not an IPv4/],
    ["ip", { ip: "fe80::1" }, /not an IPv4/],
    ["name", { name: "-bad-" }, /not a valid host name/],
    ["name", { name: "under_score" }, /not a valid host name/],
    ["name", { name: "a".repeat(64) }, /not a valid host name/],
    ["uPosition", { uPosition: 0 }, /U position starts at 1/],
  ] as const)("rejects a bad %s (%j) with BAD_REQUEST naming the field", async (field, bad, text) => {
    const before = (await h.store.db.select({ n: count() }).from(h.store.t.machines))[0]!.n;
    const { shape } = await expectTrpcError(h.operator.machines.enroll(machineInput(next(), bad)), "BAD_REQUEST", "VALIDATION");
    expect(shape.message).toMatch(new RegExp(`^${field}: `));
    expect(shape.message).toMatch(text);
    expect(shape.data.details).toContainEqual(expect.objectContaining({ field }));
    expect((await h.store.db.select({ n: count() }).from(h.store.t.machines))[0]!.n).toBe(before);
  });

  it("rejects a bad BMC address naming bmc.address", async () => {
    const { shape } = await expectTrpcError(
      h.operator.machines.enroll(machineInput(next(), { bmc: { address: "bad host!", username: "root", password: "pw" } })),
      "BAD_REQUEST",
    );
    expect(shape.message).toMatch(/^bmc\.address: /);
  });

  describe("placement", () => {
    let rackId: number;
    beforeAll(async () => {
      rackId = (await h.operator.racks.create({ name: "place-r1", heightU: 12 })).id;
      await enroll({ name: "tall-10", rackId, uPosition: 10, uHeight: 2 }); // U10-U11
    });

    it("accepts a machine inside the rack, up to the top U", async () => {
      const { id } = await enroll({ rackId, uPosition: 12 });
      expect((await h.viewer.machines.get({ id })).uPosition).toBe(12);
      const { id: low } = await enroll({ rackId, uPosition: 1, uHeight: 4 });
      expect((await h.viewer.machines.get({ id: low })).rackName).toBe("place-r1");
    });

    it.each([
      ["above the rack", 13, 1],
      ["crossing the top", 12, 2],
      ["far above", 100, 1],
    ])("refuses a position %s (U%i, %iU) with U_OUT_OF_RANGE", async (_what, uPosition, uHeight) => {
      const { shape } = await expectTrpcError(
        h.operator.machines.enroll(machineInput(next(), { rackId, uPosition, uHeight })),
        "BAD_REQUEST",
        "U_OUT_OF_RANGE",
      );
      expect(shape.data.details).toContainEqual(expect.objectContaining({ field: "uPosition" }));
    });

    it.each([
      ["the bottom U of a 2U machine", 10, 1],
      ["the top U of a 2U machine", 11, 1],
      ["from below, a 2U reaching into it", 9, 2],
      ["a 3U covering it entirely", 9, 3],
    ])("refuses overlapping %s with U_OVERLAP", async (_what, uPosition, uHeight) => {
      const { error } = await expectTrpcError(
        h.operator.machines.enroll(machineInput(next(), { rackId, uPosition, uHeight })),
        "CONFLICT",
        "U_OVERLAP",
      );
      expect(error.message).toContain("tall-10");
    });

    it("accepts machines right next to a multi-U machine", async () => {
      await enroll({ rackId, uPosition: 8, uHeight: 2 }); // U8-U9
    });

    it("refuses an unknown rack, a rack without U and a U without rack", async () => {
      await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { rackId: 9999, uPosition: 1 })), "NOT_FOUND", "RACK_NOT_FOUND");
      const { shape } = await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { rackId })), "BAD_REQUEST", "VALIDATION");
      expect(shape.data.details).toContainEqual(expect.objectContaining({ field: "uPosition" }));
      await expectTrpcError(h.operator.machines.enroll(machineInput(next(), { uPosition: 3 })), "BAD_REQUEST", "VALIDATION");
    });
  });

  describe("uniqueness", () => {
    let existing: Awaited<ReturnType<typeof enroll>>;
    beforeAll(async () => {
      existing = await enroll({ name: "unique-1", bootMac: "52:54:00:aa:00:01", ip: "192.168.50.1" });
    });

    it.each([
      ["name", { name: "UNIQUE-1" }],
      ["bootMac", { bootMac: "52-54-00-AA-00-01" }],
      ["bootMac", { bootMac: "5254.00aa.0001" }],
      ["ip", { ip: "192.168.50.1" }],
    ] as const)("refuses a duplicate %s (%j) with CONFLICT", async (field, dup) => {
      const before = (await h.store.db.select({ n: count() }).from(h.store.t.machines))[0]!.n;
      const { shape } = await expectTrpcError(h.operator.machines.enroll(machineInput(next(), dup)), "CONFLICT", "CONFLICT");
      expect(shape.data.details).toContainEqual(expect.objectContaining({ field }));
      expect(shape.message).toContain("unique-1");
      expect((await h.store.db.select({ n: count() }).from(h.store.t.machines))[0]!.n).toBe(before);
    });

    it("names every clashing field at once", async () => {
      const { shape } = await expectTrpcError(
        h.operator.machines.enroll({ name: "unique-1", bootMac: existing.input.bootMac, ip: existing.input.ip }),
        "CONFLICT",
      );
      expect(shape.data.details.map((d) => d.field).sort()).toEqual(["bootMac", "ip", "name"]);
    });
  });
});

describe("machines.get", () => {
  it("returns detail with allowed actions and NOT_FOUND for unknown ids", async () => {
    const { id } = await enroll({ bmc: { address: "10.200.0.1", username: "root", password: "pw-get" } });
    const m = await h.viewer.machines.get({ id });
    expect(m.allowedActions).toEqual(["manage"]);
    expect(m.bmc).toMatchObject({ address: "10.200.0.1", username: "root", port: 623, driver: "ipmitool", hasPassword: true });
    expect(m.nics).toHaveLength(1);
    await expectTrpcError(h.viewer.machines.get({ id: 987654 }), "NOT_FOUND", "MACHINE_NOT_FOUND");
  });
});

describe("machines.delete", () => {
  it("deletes an enrolled machine, its NIC with it (the MAC is free again)", async () => {
    const rackId = (await h.operator.racks.create({ name: "del-r", heightU: 10 })).id;
    const { id, input } = await enroll({ rackId, uPosition: 4 });
    const published = h.published.length;
    await h.operator.machines.delete({ id });
    await expectTrpcError(h.viewer.machines.get({ id }), "NOT_FOUND");
    expect((await h.store.db.select().from(h.store.t.nics).where(eq(h.store.t.nics.mac, input.bootMac)))).toEqual([]);
    expect(h.published.slice(published)).toContainEqual({ type: "machine.deleted", machineId: id, rackId });
    expect(h.published.slice(published)).toContainEqual({ type: "rack.changed", rackId });
    const ev = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.kind, "machine.deleted")).orderBy(h.store.t.events.id)).at(-1)!;
    expect(ev.payload).toMatchObject({ machineId: id });
    // Same MAC, IP and U slot can be enrolled again.
    await h.operator.machines.enroll({ ...input, name: "reborn" });
  });

  it.each(["deployed", "deploying", "inspecting", "cleaning"] as const)("refuses to delete a %s machine", async (state) => {
    const { id } = await enroll();
    await drive(id, state);
    const { shape } = await expectTrpcError(h.operator.machines.delete({ id }), "CONFLICT", "MACHINE_BUSY");
    expect(shape.message).toContain(STATE_LABELS[state]);
    expect((await h.viewer.machines.get({ id })).state).toBe(state);
  });

  it.each(["enrolled", "manageable", "available", "deploy_failed"] as const)("deletes a %s machine", async (state) => {
    const { id } = await enroll();
    await drive(id, state);
    await h.operator.machines.delete({ id });
    expect((await h.store.db.select().from(h.store.t.machines).where(eq(h.store.t.machines.id, id)))[0]).toBeUndefined();
  });

  it("gives NOT_FOUND for an unknown machine", async () => {
    await expectTrpcError(h.operator.machines.delete({ id: 424242 }), "NOT_FOUND", "MACHINE_NOT_FOUND");
  });
});

describe("machines.action", () => {
  it("applies an operator action and returns the move", async () => {
    const { id } = await enroll();
    expect(await h.operator.machines.action({ id, action: "manage" })).toEqual({ machineId: id, from: "enrolled", to: "manageable" });
    expect(await h.operator.machines.action({ id, action: "provide" })).toMatchObject({ to: "available" });
    const ev = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.machineId, id)).orderBy(h.store.t.events.id)).at(-1)!;
    expect(ev).toMatchObject({ kind: "state.changed", actor: "user:operator" });
  });

  it("maps an illegal move to CONFLICT / INVALID_TRANSITION", async () => {
    const { id } = await enroll();
    const { shape } = await expectTrpcError(h.operator.machines.action({ id, action: "deploy" }), "CONFLICT", "INVALID_TRANSITION");
    expect(shape.message).toMatch(/Deploy is not allowed/);
    expect((await h.viewer.machines.get({ id })).state).toBe("enrolled");
  });

  it("does not accept system actions (succeed, fail) from the API", async () => {
    const { id } = await enroll();
    await drive(id, "deploying");
    for (const action of ["succeed", "fail"]) {
      await expectTrpcError(h.operator.machines.action({ id, action: action as never }), "BAD_REQUEST", "VALIDATION");
    }
    expect((await h.viewer.machines.get({ id })).state).toBe("deploying");
  });

  it("records the reason of an abort as last_error", async () => {
    const { id } = await enroll();
    await drive(id, "deploying");
    await h.operator.machines.action({ id, action: "abort", reason: "wrong image" });
    expect(await h.viewer.machines.get({ id })).toMatchObject({ state: "deploy_failed", lastError: "wrong image" });
  });
});

describe("machines.bulkAction", () => {
  it("with ids: applies per machine, a refused machine does not block the others", async () => {
    const a = await enroll();
    const b = await enroll();
    const c = await enroll();
    await drive(b.id, "manageable");
    const res = await h.operator.machines.bulkAction({ selection: { ids: [a.id, b.id, c.id, a.id] }, action: "manage" });
    expect(res).toHaveLength(3);
    const byId = new Map(res.map((r) => [r.id, r]));
    expect(byId.get(a.id)).toMatchObject({ ok: true, state: "manageable", name: a.input.name });
    expect(byId.get(c.id)).toMatchObject({ ok: true, state: "manageable" });
    expect(byId.get(b.id)).toMatchObject({ ok: false, name: b.input.name });
    expect(byId.get(b.id)!.error).toMatch(/not allowed/);
    for (const m of [a, b, c]) expect((await h.viewer.machines.get({ id: m.id })).state).toBe("manageable");
  });

  it("with ids: reports unknown machines without failing the batch", async () => {
    const a = await enroll();
    const res = await h.operator.machines.bulkAction({ selection: { ids: [a.id, 777777] }, action: "manage" });
    expect(res.find((r) => r.id === a.id)).toMatchObject({ ok: true });
    expect(res.find((r) => r.id === 777777)).toMatchObject({ ok: false });
  });

  it("with a filter: acts on every matching machine and only those", async () => {
    const rackId = (await h.operator.racks.create({ name: "bulk-r", heightU: 10 })).id;
    const ms: Awaited<ReturnType<typeof enroll>>[] = [];
    for (let u = 1; u <= 4; u++) ms.push(await enroll({ rackId, uPosition: u }));
    await drive(ms[0]!.id, "available");
    await drive(ms[1]!.id, "available");
    await drive(ms[2]!.id, "deployed");
    const outside = await enroll();
    await drive(outside.id, "available");
    // Deploying needs an OS profile: the image the job writes.
    const profile = (await h.store.db
      .insert(h.store.t.osProfiles)
      .values({ name: `img-${rackId}`, kind: "image", imageUrl: "http://127.0.0.1/img.raw.gz", createdAt: new Date(), updatedAt: new Date() })
      .returning())[0]!;
    for (const m of [ms[0]!, ms[1]!, ms[2]!, outside]) await h.operator.machines.update({ id: m.id, osProfileId: profile.id });
    // A deploy boots the machine through its BMC: machines without one are skipped by the plan.
    for (const m of [ms[0]!, ms[1]!]) {
      await h.operator.machines.update({ id: m.id, bmc: { driver: "fake", address: "127.0.0.1", username: "admin", password: "secret" } });
    }

    const res = await h.operator.machines.bulkAction({ selection: { filter: { rackId, states: ["available", "deployed"] } }, action: "deploy" });
    expect(res.map((r) => r.id).sort()).toEqual([ms[0]!.id, ms[1]!.id, ms[2]!.id].sort());
    expect(res.filter((r) => r.ok).map((r) => r.id).sort()).toEqual([ms[0]!.id, ms[1]!.id].sort());
    expect(res.find((r) => r.id === ms[2]!.id)).toMatchObject({ ok: false, skipped: true, error: "Deploy is not allowed in state Deployed" });
    expect((await h.viewer.machines.get({ id: ms[0]!.id })).state).toBe("deploying");
    // Each deploying machine got a job of its own.
    expect((await h.store.db.select().from(h.store.t.jobs).where(inArray(h.store.t.jobs.machineId, [ms[0]!.id, ms[1]!.id]))).map((j) => j.kind)).toEqual(["deploy_image", "deploy_image"]);
    expect((await h.viewer.machines.get({ id: ms[3]!.id })).state).toBe("enrolled");
    expect((await h.viewer.machines.get({ id: outside.id })).state).toBe("available");
  });

  it("with a filter that matches nothing: returns no results", async () => {
    expect(await h.operator.machines.bulkAction({ selection: { filter: { q: "matches-nothing-at-all" } }, action: "manage" })).toEqual([]);
  });
});

describe("machines.setMaintenance", () => {
  it("sets and clears the flag with its reason, recording events", async () => {
    const { id } = await enroll();
    await h.operator.machines.setMaintenance({ id, on: true, reason: "PSU replacement" });
    expect(await h.viewer.machines.get({ id })).toMatchObject({ maintenance: true, maintenanceReason: "PSU replacement" });
    expect(h.published.at(-2)).toMatchObject({ type: "machine.changed", machineId: id, maintenance: true });
    await h.operator.machines.setMaintenance({ id, on: false });
    expect(await h.viewer.machines.get({ id })).toMatchObject({ maintenance: false, maintenanceReason: null });
    const kinds = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.machineId, id)).orderBy(h.store.t.events.id)).map((e) => e.kind);
    expect(kinds).toEqual(["machine.enrolled", "maintenance.on", "maintenance.off"]);
    await expectTrpcError(h.operator.machines.setMaintenance({ id: 565656, on: true }), "NOT_FOUND");
  });
});

describe("machines.update", () => {
  it("moves a machine and refuses a move onto another", async () => {
    const rackId = (await h.operator.racks.create({ name: "upd-r", heightU: 10 })).id;
    const a = await enroll({ rackId, uPosition: 1, uHeight: 2 });
    const b = await enroll({ rackId, uPosition: 5 });
    // Moving within its own slots is not an overlap with itself.
    await h.operator.machines.update({ id: a.id, uPosition: 2 });
    expect((await h.viewer.machines.get({ id: a.id })).uPosition).toBe(2);
    await expectTrpcError(h.operator.machines.update({ id: a.id, uPosition: 4 }), "CONFLICT", "U_OVERLAP");
    await expectTrpcError(h.operator.machines.update({ id: b.id, bootMac: a.input.bootMac }), "CONFLICT", "CONFLICT");
    await h.operator.machines.update({ id: b.id, bootMac: "AA-BB-CC-00-99-01", ip: null });
    expect(await h.viewer.machines.get({ id: b.id })).toMatchObject({ bootMac: "aa:bb:cc:00:99:01", ip: null });
  });

  it("keeps the boot NIC's static network configuration; refuses a bad one naming the field; not while busy", async () => {
    const { id } = await enroll({ ip: "10.210.0.5", network: { ifname: "eno1", prefix: 24, gateway: "10.210.0.1" } });
    expect((await h.viewer.machines.get({ id })).nics[0]).toMatchObject({ ifname: "eno1", prefix: 24, gateway: "10.210.0.1" });
    await h.operator.machines.update({ id, network: { ifname: "ens3", prefix: 16, gateway: null } });
    expect((await h.viewer.machines.get({ id })).nics[0]).toMatchObject({ ifname: "ens3", prefix: 16, gateway: null });
    const bad = await expectTrpcError(h.operator.machines.update({ id, network: { ifname: "bad name" } }), "BAD_REQUEST");
    expect(bad.error.message).toContain("Interface names");
    // lo as the boot NIC would give the ifupdown file a second `iface lo` stanza (issue 14).
    const lo = await expectTrpcError(h.operator.machines.update({ id, network: { ifname: "lo" } }), "BAD_REQUEST");
    expect(lo.error.message).toContain("is reserved (lo is the loopback");
    await expectTrpcError(h.operator.machines.update({ id, network: { prefix: 33 } }), "BAD_REQUEST");
    await drive(id, "deploying");
    await expectTrpcError(h.operator.machines.update({ id, network: null }), "CONFLICT", "MACHINE_BUSY");
    expect((await h.viewer.machines.get({ id })).nics[0]!.ifname).toBe("ens3");
  });
});
