/**
 * Power actions that answer at once (oob.powerStart / oob.powerWait) against real ipmi_sim BMCs through ipmitool:
 * the answer comes before the BMC is touched, the machine shows "powering on…" until confirmed, refusals are
 * immediate, the hand hold keeps jobs off the machine meanwhile, and a restart clears stale pending marks.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IpmitoolCall } from "../oob/exec";
import { IpmiSim, SIM_USER } from "../oob/testing/ipmi-sim";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { clearStalePowerPending } from "./hand-power";

let h: Harness;
let sims: IpmiSim[] = [];
const calls: IpmitoolCall[] = [];
const ids: number[] = [];

beforeAll(async () => {
  sims = await Promise.all([new IpmiSim("ps-a").start(), new IpmiSim("ps-b").start()]);
  h = createHarness({ oob: { callTimeoutMs: 3000, attempts: 2, backoffMs: 50, spacingMs: 100, confirmTimeoutMs: 5000 }, observe: (c) => calls.push(c) });
  for (const [i, s] of sims.entries()) ids.push((await h.operator.machines.enroll(machineInput(i + 1, { bmc: { address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password } }))).id);
  ids.push((await h.operator.machines.enroll(machineInput(3))).id); // no BMC
});
afterAll(async () => {
  h?.close();
  await Promise.all(sims.map((s) => s.stop()));
});

const pendingOf = async (id: number) => (await h.store.db.select({ p: h.store.t.machines.powerPending }).from(h.store.t.machines).where(eq(h.store.t.machines.id, id)))[0]!.p;

describe("oob.powerStart", () => {
  it("answers before any BMC command, shows the pending state, then confirms in the background", async () => {
    for (const s of sims) s.ipmitool(["chassis", "power", "off"]);
    const before = calls.length;
    const t = performance.now();
    const start = await h.operator.oob.powerStart({ selection: { ids }, action: "on" });
    const answeredIn = performance.now() - t;
    expect(start.results).toEqual([
      { id: ids[0], name: "node-001", ok: true, pending: "on" },
      { id: ids[1], name: "node-002", ok: true, pending: "on" },
      { id: ids[2], name: "node-003", ok: false, error: "has no BMC to switch its power", code: "BMC_NOT_CONFIGURED", skipped: true },
    ]);
    // Nothing was asked of a BMC before the answer (ipmitool runs are recorded when they end, so count none ended yet).
    expect(calls.slice(before).filter((c) => c.startedAt < t + answeredIn)).toEqual([]);
    expect(await pendingOf(ids[0]!)).toBe("on");
    expect((await h.viewer.machines.get({ id: ids[0]! })).powerPending).toBe("on");
    expect((await h.viewer.machines.list({})).rows.find((r) => r.id === ids[1])!.powerPending).toBe("on");

    const done = await h.operator.oob.powerWait({ operationId: start.operationId, timeoutMs: 20_000 });
    expect(done.done).toBe(true);
    expect(done.results).toEqual([
      { id: ids[0], name: "node-001", ok: true, powerState: "on" },
      { id: ids[1], name: "node-002", ok: true, powerState: "on" },
      { id: ids[2], name: "node-003", ok: false, error: "has no BMC to switch its power", code: "BMC_NOT_CONFIGURED", skipped: true },
    ]);
    expect(sims.map((s) => s.power())).toEqual(["on", "on"]);
    expect(await pendingOf(ids[0]!)).toBeNull();
    expect((await h.viewer.machines.get({ id: ids[0]! })).powerState).toBe("on");
    expect(h.published).toContainEqual(expect.objectContaining({ type: "machine.changed", machineId: ids[0], powerState: "on" }));
  });

  it("a second action on a machine whose first is still running is refused at once (MACHINE_BUSY), not queued behind it", async () => {
    const first = await h.operator.oob.powerStart({ selection: { ids: [ids[0]!] }, action: "off" });
    const second = await h.operator.oob.powerStart({ selection: { ids: [ids[0]!] }, action: "on" });
    expect(second.results[0]).toMatchObject({ ok: false, code: "MACHINE_BUSY" });
    // The waiting call is refused the same way while the hold lasts.
    const [blocking] = await h.operator.oob.power({ selection: { ids: [ids[0]!] }, action: "on" });
    expect(blocking).toMatchObject({ ok: false, code: "MACHINE_BUSY" });
    const r = await h.operator.oob.powerWait({ operationId: first.operationId, timeoutMs: 20_000 });
    expect(r.results![0]).toMatchObject({ ok: true, powerState: "off" });
    expect(sims[0]!.power()).toBe("off");
  });

  it("a BMC failure shows up in powerWait, clears the pending state, and never records a power state it did not read", async () => {
    await sims[1]!.kill();
    const start = await h.operator.oob.powerStart({ selection: { ids: [ids[1]!] }, action: "off" });
    expect(start.results[0]).toMatchObject({ ok: true, pending: "off" });
    const r = await h.operator.oob.powerWait({ operationId: start.operationId, timeoutMs: 30_000 });
    expect(r.done).toBe(true);
    expect(r.results![0]).toMatchObject({ ok: false, code: expect.stringMatching(/BMC_/) });
    expect(await pendingOf(ids[1]!)).toBeNull();
    expect((await h.viewer.machines.get({ id: ids[1]! })).powerState).toBe("on"); // the last state read, not the one asked for
    await sims[1]!.start();
  });

  it("powerWait: unknown operations are refused; viewers cannot start or wait; a restart clears stale pending marks", async () => {
    await expect(h.operator.oob.powerWait({ operationId: "00000000-0000-4000-8000-000000000000", timeoutMs: 0 })).rejects.toThrow(/No power operation/);
    await expect(h.viewer.oob.powerStart({ selection: { ids }, action: "on" })).rejects.toThrow();
    await h.store.db.update(h.store.t.machines).set({ powerPending: "on" }).where(eq(h.store.t.machines.id, ids[0]!));
    expect(await clearStalePowerPending(h.domain)).toBe(1);
    expect(await pendingOf(ids[0]!)).toBeNull();
  });
});
