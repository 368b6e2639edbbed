/**
 * The subnets router on the Store, on both databases (vitest projects `sqlite` and `postgres`): create, list, get,
 * update and delete with their refusals (name, overlap, allocated addresses), and allocations read back in address
 * order. The enrollment-level flows are in subnets.test.ts (SQLite: machines enroll through server/machines).
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectTrpcError } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { addMachine } from "../testing/planning-fixture";
import { allocatePending } from "./allocate";

let h: Harness;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("subnets on the Store", () => {
  it("creates, lists with use, refuses a taken name, an overlap and hostile names (nothing written)", async () => {
    const { id } = await h.admin.subnets.create({ name: "st-a", cidr: "10.70.0.0/24", gateway: "10.70.0.1", dns: ["10.70.0.2"], reserved: [{ start: "10.70.0.2", end: "10.70.0.9" }] });
    await expectTrpcError(h.admin.subnets.create({ name: "st-a", cidr: "10.71.0.0/24" }), "CONFLICT", "CONFLICT");
    const overlap = await expectTrpcError(h.admin.subnets.create({ name: "st-b", cidr: "10.70.0.128/25" }), "CONFLICT", "CONFLICT");
    expect(overlap.error.message).toBe("10.70.0.128/25 overlaps subnet st-a (10.70.0.0/24)");
    for (const hostile of [`x'; DROP TABLE subnets; --`, "a\nb", "a\u0000b", "$(id)", "..", "ü-net", "x".repeat(65)]) {
      await expectTrpcError(h.admin.subnets.create({ name: hostile, cidr: "10.72.0.0/24" }), "BAD_REQUEST");
    }
    const list = await h.viewer.subnets.list();
    expect(list.map((s) => s.name)).toEqual(["st-a"]);
    expect(list.find((s) => s.id === id)).toMatchObject({ name: "st-a", allocated: 0, assignable: "245", free: "245", reserved: [{ start: "10.70.0.2", end: "10.70.0.9" }], dns: ["10.70.0.2"] });
  });

  it("lists a machine's allocation, refuses deleting or shrinking around it, and deletes an empty subnet", async () => {
    const { id } = await h.admin.subnets.create({ name: "st-c", cidr: "10.73.0.0/24", gateway: "10.73.0.1" });
    const m = await addMachine(h, { name: "st-holder", bootMac: "52:54:00:a4:00:01", ifname: "eno1" });
    await h.store.db.update(h.store.t.nics).set({ addressMode: "auto", subnetId: id }).where(eq(h.store.t.nics.machineId, m));
    await h.store.transaction((tx) => allocatePending(h.store, tx, m));
    const s = await h.viewer.subnets.get({ id });
    expect(s).toMatchObject({ allocated: 1, free: "252", allocations: [{ address: "10.73.0.2", mode: "auto", machineName: "st-holder", interface: "eno1", mac: "52:54:00:a4:00:01" }], more: false });
    const del = await expectTrpcError(h.admin.subnets.delete({ id }), "CONFLICT");
    expect(del.error.message).toBe("Subnet st-c has 1 allocated address(es): release them first");
    const shrink = await expectTrpcError(
      h.admin.subnets.update({ id, name: "st-c", cidr: s.cidr, gateway: s.gateway, dns: [], reserved: [{ start: "10.73.0.2", end: "10.73.0.5" }], dynamic: null }),
      "CONFLICT",
    );
    expect(shrink.error.message).toMatch(/would leave allocated addresses outside, reserved or dynamic: 10\.73\.0\.2 \(st-holder\)/);
    await h.admin.subnets.update({ id, name: "st-c2", cidr: s.cidr, gateway: s.gateway, dns: [], vlanId: 73, reserved: [], dynamic: null });
    expect(await h.viewer.subnets.get({ id })).toMatchObject({ name: "st-c2", vlanId: 73 });
    const { id: empty } = await h.admin.subnets.create({ name: "st-empty", cidr: "10.74.0.0/24" });
    await h.admin.subnets.delete({ id: empty });
    expect((await h.viewer.subnets.list()).some((x) => x.id === empty)).toBe(false);
    const { events } = h.store.t;
    const kinds = (await h.store.db.select({ kind: events.kind }).from(events)).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(["subnet.created", "subnet.updated", "subnet.deleted"]));
  });
});
