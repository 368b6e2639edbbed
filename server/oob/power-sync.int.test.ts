/** Power sync against real ipmi_sim BMCs: drift recorded, unreachable after N failures, recovery, maintenance skipped. */
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgPoolOf } from "../db/store";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { PowerSync, sweepPower } from "./power-sync";
import { IpmiSim, SIM_USER } from "./testing/ipmi-sim";

let h: Harness;
let a: IpmiSim;
let b: IpmiSim;
let idA: number;
let idB: number;

beforeAll(async () => {
  [a, b] = await Promise.all([new IpmiSim("sync-a").start(), new IpmiSim("sync-b").start()]);
  h = createHarness({ oob: { callTimeoutMs: 1000, attempts: 1, spacingMs: 0 } });
  await h.admin.oob.updateSyncSettings({ failureThreshold: 2, concurrency: 4 });
  const bmc = (s: IpmiSim) => ({ address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password });
  idA = (await h.operator.machines.enroll(machineInput(1, { bmc: bmc(a) }))).id;
  idB = (await h.operator.machines.enroll(machineInput(2, { bmc: bmc(b) }))).id;
  await h.operator.machines.enroll(machineInput(3)); // no BMC: never swept
});
afterAll(async () => {
  h?.close();
  await Promise.all([a?.stop(), b?.stop()]);
});

const eventsOf = (id: number, kind: string) =>
  h.store.db.select().from(h.store.t.events).where(and(eq(h.store.t.events.machineId, id), eq(h.store.t.events.kind, kind))).orderBy(h.store.t.events.id);

describe("power sync", () => {
  it("reads every BMC and records a power change made behind Rackhand's back", async () => {
    const first = await sweepPower(h.domain, { all: true });
    expect(first).toMatchObject({ machines: 2, ok: 2, failed: 0 });
    expect((await h.viewer.machines.get({ id: idA })).powerState).toBe("off");
    // Someone powers the machine on with ipmitool directly.
    expect(a.ipmitool(["chassis", "power", "on"]).status).toBe(0);
    const second = await sweepPower(h.domain, { all: true });
    expect(second).toMatchObject({ ok: 2, changed: 1 });
    expect((await h.viewer.machines.get({ id: idA })).powerState).toBe("on");
    const drift = (await eventsOf(idA, "power.changed")).at(-1)!;
    expect(drift.actor).toBe("system:power-sync");
    expect(drift.message).toBe("Power off → on (changed outside Rackhand, seen by power sync)");
    expect(h.published).toContainEqual(expect.objectContaining({ type: "machine.changed", machineId: idA, powerState: "on" }));
    // Nothing changed: no new event.
    const n = (await eventsOf(idA, "power.changed")).length;
    await sweepPower(h.domain, { all: true });
    expect((await eventsOf(idA, "power.changed")).length).toBe(n);
  });

  it("a killed BMC turns unreachable after the threshold, visible in the table; it recovers when it answers again", async () => {
    const seenBefore = (await h.viewer.machines.get({ id: idB })).bmc!.lastSeen!;
    await b.kill();
    await sweepPower(h.domain, { all: true });
    let row = (await h.viewer.machines.list({ q: "node-002" })).rows[0]!;
    expect(row.bmcReachable).toBe(true); // one failure is not enough (threshold 2)
    await sweepPower(h.domain, { all: true });
    row = (await h.viewer.machines.list({ q: "node-002" })).rows[0]!;
    expect(row.bmcReachable).toBe(false);
    expect(row.bmcLastSeen).toBe(seenBefore);
    const detail = await h.viewer.machines.get({ id: idB });
    expect(detail.bmc).toMatchObject({ reachable: false, lastError: expect.stringMatching(/did not answer|unreachable/) });
    expect(await eventsOf(idB, "bmc.unreachable")).toHaveLength(1);
    // The other BMC is unaffected.
    expect((await h.viewer.machines.get({ id: idA })).bmc!.reachable).toBe(true);

    await b.start();
    await sweepPower(h.domain, { all: true });
    const back = await h.viewer.machines.get({ id: idB });
    expect(back.bmc).toMatchObject({ reachable: true, lastError: null });
    expect(back.bmc!.lastSeen!).toBeGreaterThan(seenBefore);
    expect(await eventsOf(idB, "bmc.reachable")).toHaveLength(1);
    expect((await h.store.db.select().from(h.store.t.bmcs).where(eq(h.store.t.bmcs.machineId, idB)))[0]!.consecutiveFailures).toBe(0);
  });

  it("skips machines in maintenance", async () => {
    await h.operator.machines.setMaintenance({ id: idA, on: true, reason: "bench" });
    a.ipmitool(["chassis", "power", "off"]);
    const s = await sweepPower(h.domain, { all: true });
    expect(s.machines).toBe(1);
    expect((await h.viewer.machines.get({ id: idA })).powerState).toBe("on");
  });

  it("a quiet sweep writes nothing; only differences are written, in one transaction", async () => {
    await h.operator.machines.setMaintenance({ id: idA, on: false });
    await sweepPower(h.domain, { all: true }); // settles A's power after maintenance
    // SQLite: rows changed on the connection. PostgreSQL: transaction ids assigned (each write transaction takes
    // one, and so does each txid_current() asking): a read-only sweep takes none.
    const changes = async () =>
      h.store.dialect === "sqlite" ? (h.db.$client.prepare("select total_changes() as n").get() as { n: number }).n : Number((await pgPoolOf(h.store).query<{ x: string }>("SELECT txid_current() AS x")).rows[0]!.x) - 1;
    const before = await changes();
    const quiet = await sweepPower(h.domain, { all: true });
    expect(quiet).toMatchObject({ machines: 2, ok: 2, failed: 0, changed: 0, written: 0 });
    expect(await changes()).toBe(h.store.dialect === "sqlite" ? before : before + 1);
    b.ipmitool(["chassis", "power", b.power() === "on" ? "off" : "on"]);
    const one = await sweepPower(h.domain, { all: true });
    expect(one).toMatchObject({ changed: 1, written: 1 });
    expect(one.cpuMs).toBeGreaterThan(0);
  });

  it("skips the lifecycle states set not to sync, applies new settings at once, and runs a sweep on request", async () => {
    await h.admin.oob.updateSyncSettings({ skipStates: ["enrolled"] });
    expect((await h.viewer.oob.syncSettings()).skipStates).toEqual(["enrolled"]);
    expect((await sweepPower(h.domain, { all: true })).machines).toBe(0); // both test machines are still enrolled
    await h.admin.oob.updateSyncSettings({ skipStates: [] });
    // "Sync now" without a loop in this process runs a sweep directly; viewers cannot start one.
    await expect(h.viewer.oob.syncNow()).rejects.toThrow();
    // Another process's periodic sweep has just leased every BMC (PostgreSQL; one process on SQLite): sync now
    // still reads them all.
    expect((await sweepPower(h.domain, { owner: "other-host:1" })).machines).toBe(2);
    const now = await h.operator.oob.syncNow();
    expect(now).toMatchObject({ machines: 2, ok: 2 });
    const st = await h.viewer.oob.syncStatus();
    expect(st).toMatchObject({ loop: false, statusProbe: "native" });
    expect(st.probe.native).toBeGreaterThan(0);
  });

  it("the loop: sync now reports through the status and a power.sweep event; new settings reschedule at once", async () => {
    const loop = new PowerSync(h.domain);
    loop.start();
    try {
      await h.admin.oob.updateSyncSettings({ intervalS: 5, jitterS: 0 });
      const st = await h.operator.oob.syncNow();
      expect(st.ok).toBe(2);
      expect((await h.viewer.oob.syncStatus()).last).toMatchObject({ at: st.at, machines: 2 });
      expect(h.published).toContainEqual(expect.objectContaining({ type: "power.sweep", machines: 2, at: st.at }));
      // With the interval at 5 s, the next sweep comes within ~5 s, not after the old 60 s.
      const seen = h.published.filter((e) => e.type === "power.sweep").length;
      await new Promise((r) => setTimeout(r, 6500));
      expect(h.published.filter((e) => e.type === "power.sweep").length).toBeGreaterThan(seen);
    } finally {
      await loop.stop();
    }
  });
});

