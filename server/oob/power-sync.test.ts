/**
 * Power sync through the Store, on both databases (vitest projects sqlite and postgres), with the fake driver: what
 * is swept, what is written (only differences, one transaction), drift and reachability. The real-BMC cases are in
 * power-sync.int.test.ts (ipmi_sim).
 */
import { and, eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { createFakeDriver } from "./fake";
import { sweepLeaseMs, sweepPower } from "./power-sync";
import { getPowerSyncSettings } from "./settings";

let h: Harness;
let ids: number[];
const fake = () => h.domain.oob.driver("fake") as ReturnType<typeof createFakeDriver>;
const bmcOf = (n: number) => ({ driver: "fake" as const, address: `10.61.0.${n}`, username: "u", password: "p" });

beforeEach(async () => {
  h = createHarness();
  ids = [];
  // Addresses ending in 3, 6, 9 start powered off (fake driver); .254 never answers.
  for (const n of [1, 2, 3]) ids.push((await h.operator.machines.enroll(machineInput(n, { bmc: bmcOf(n) }))).id);
  ids.push((await h.operator.machines.enroll(machineInput(4, { bmc: bmcOf(254) }))).id);
  await h.operator.machines.enroll(machineInput(5)); // no BMC: never swept
});
afterEach(() => h.close());

const bmcRow = async (id: number) => {
  const { db, t } = h.store;
  return (await db.select().from(t.bmcs).where(eq(t.bmcs.machineId, id)))[0]!;
};
const machineRow = async (id: number) => {
  const { db, t } = h.store;
  return (await db.select().from(t.machines).where(eq(t.machines.id, id)))[0]!;
};
const eventsOf = async (id: number, kind: string) => {
  const { db, t } = h.store;
  return db.select().from(t.events).where(and(eq(t.events.machineId, id), eq(t.events.kind, kind)));
};

describe("power sync on the Store", () => {
  it("reads every BMC, records drift once, counts failures to unreachable, and a quiet sweep writes nothing", async () => {
    await h.admin.oob.updateSyncSettings({ failureThreshold: 2 });
    const first = await sweepPower(h.domain, { all: true });
    expect(first).toMatchObject({ machines: 4, ok: 3, failed: 1 });
    expect((await machineRow(ids[0]!)).powerState).toBe("on");
    expect((await machineRow(ids[2]!)).powerState).toBe("off");
    expect((await bmcRow(ids[3]!)).reachable).not.toBe(false); // one failure of two: not yet unreachable

    // Someone powers node-001 off behind Rackhand's back.
    fake().chassis({ address: bmcOf(1).address, port: 623 }).power = "off";
    const second = await sweepPower(h.domain, { all: true });
    expect(second).toMatchObject({ ok: 3, failed: 1, changed: 1 });
    expect((await machineRow(ids[0]!)).powerState).toBe("off");
    const drift = await eventsOf(ids[0]!, "power.changed");
    expect(drift.at(-1)!.message).toBe("Power on → off (changed outside Rackhand, seen by power sync)");
    expect(drift.at(-1)!.actor).toBe("system:power-sync");
    expect((await bmcRow(ids[3]!)).reachable).toBe(false);
    expect(await eventsOf(ids[3]!, "bmc.unreachable")).toHaveLength(1);
    expect(h.published).toContainEqual(expect.objectContaining({ type: "machine.changed", machineId: ids[0], powerState: "off" }));

    // Nothing changed: the healthy BMCs' rows are untouched (last seen is fresh), only the failing one is written.
    const seen = (await bmcRow(ids[1]!)).lastSeen!.getTime();
    const quiet = await sweepPower(h.domain, { all: true });
    expect(quiet).toMatchObject({ changed: 0, written: 1 });
    expect((await bmcRow(ids[1]!)).lastSeen!.getTime()).toBe(seen);
    expect(await eventsOf(ids[0]!, "power.changed")).toHaveLength(drift.length);
  });

  it("skips machines in maintenance and the lifecycle states set not to sync", async () => {
    await h.store.db.update(h.store.t.machines).set({ maintenance: true }).where(eq(h.store.t.machines.id, ids[0]!));
    expect((await sweepPower(h.domain, { all: true })).machines).toBe(3);
    await h.admin.oob.updateSyncSettings({ skipStates: ["enrolled"] });
    expect((await sweepPower(h.domain, { all: true })).machines).toBe(0);
  });

  it("settings: a patch keeps the other fields; the lease of a sweep is shorter than the shortest gap", async () => {
    await h.admin.oob.updateSyncSettings({ intervalS: 30 });
    await h.admin.oob.updateSyncSettings({ concurrency: 3 });
    const s = await getPowerSyncSettings(h.store);
    expect(s).toMatchObject({ intervalS: 30, concurrency: 3, jitterS: 5 });
    expect(sweepLeaseMs(s)).toBe(22_500);
    expect(sweepLeaseMs({ intervalS: 5, jitterS: 3600 })).toBe(1000);
    const changes = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.kind, "settings.changed"))).length;
    expect(changes).toBe(2);
  });
});
