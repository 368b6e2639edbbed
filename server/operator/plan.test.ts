import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MachineState } from "../../lib/lifecycle";
import { STALE_PLAN_MESSAGE } from "../../lib/plan";
import { batches, jobs, machines, osProfiles } from "../db/schema";
import { driveTo, expectTrpcError, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { computePlanIn, type FullPlan } from "./plan";
import type { BulkOp } from "../../lib/plan";

let h: Harness;
let n = 300;
const fakeBmc = { driver: "fake" as const, address: "127.0.0.1", username: "admin", password: "secret" };

async function machine(state: MachineState, opts: { bmc?: boolean; profile?: number | null; maintenance?: boolean; firmware?: "bios" | "uefi" } = {}) {
  const k = ++n;
  const { id } = await h.operator.machines.enroll(
    machineInput(k, { name: `plan-${k}`, bmc: opts.bmc === false ? null : fakeBmc, osProfileId: opts.profile ?? undefined, firmware: opts.firmware }),
  );
  await driveTo(h.domain, id, state);
  if (opts.maintenance) await h.operator.machines.setMaintenance({ id, on: true, reason: "test" });
  return id;
}

function profile(name: string, opts: { firmware?: "bios" | "uefi"; imageUrl?: string | null; kind?: "image" | "installer" } = {}) {
  return h.db
    .insert(osProfiles)
    .values({
      name,
      kind: opts.kind ?? "image",
      imageUrl: opts.imageUrl === undefined ? `http://127.0.0.1/${name}.raw.gz` : opts.imageUrl,
      osFamily: "debian",
      options: opts.firmware ? { firmware: opts.firmware } : {},
      createdAt: new Date(),
      updatedAt: new Date(),
    })
    .returning()
    .get().id;
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("machines.plan", () => {
  it("deploy: acts or skips each machine with the reason, lists the changes and the totals, counts only the acting", async () => {
    const own = profile("own-img");
    const bios = profile("bios-only", { firmware: "bios" });
    const ok1 = await machine("available", { profile: own });
    const ok2 = await machine("available"); // no own profile, but one is chosen for the selection
    const deployed = await machine("deployed", { profile: own });
    const maint = await machine("available", { profile: own, maintenance: true });
    const noBmc = await machine("available", { bmc: false, profile: own });
    const uefi = await machine("available", { firmware: "uefi" });
    const busy = await machine("available", { profile: own });
    h.db.insert(jobs).values({ machineId: busy, kind: "inspect", state: "queued", createdAt: new Date() }).run();
    const ids = [ok1, ok2, deployed, maint, noBmc, uefi, busy];

    const p = await h.operator.machines.plan({ selection: { ids }, op: { type: "batch", kind: "deploy", osProfileId: bios } });
    expect(p).toMatchObject({ title: "Deploy", total: 7, acting: 2, skipped: 5, rowsTruncated: false });
    expect(p.planId).toMatch(/^[0-9a-f]{64}$/);
    const byId = new Map(p.rows.map((r) => [r.id, r]));
    expect(p.rows.slice(0, 2).map((r) => r.id)).toEqual([ok1, ok2]);
    expect(byId.get(ok1)).toMatchObject({ act: true, from: "available", to: "deploying", profile: "bios-only", detail: "Available → Deploying" });
    expect(byId.get(ok1)!.changes).toEqual([
      "OS profile: own-img → bios-only",
      "Boot entry for the agent written",
      "BMC boot device: network (next boot)",
      "Power cycle",
      "Inventory read",
      "Disk signatures wiped",
      "Image written: bios-only.raw.gz",
      "Network configuration written",
      "Boot entry removed (boots from its disk)",
      "BMC boot device: disk (persistent)",
    ]);
    expect(byId.get(ok2)!.changes[0]).toBe("OS profile: none → bios-only");
    expect(byId.get(deployed)).toMatchObject({ act: false, reason: "state", detail: "Deploy is not allowed in state Deployed" });
    expect(byId.get(maint)).toMatchObject({ act: false, reason: "maintenance" });
    expect(byId.get(noBmc)).toMatchObject({ act: false, reason: "no_bmc" });
    expect(byId.get(uefi)).toMatchObject({ act: false, reason: "firmware", detail: "OS profile bios-only boots with BIOS; the machine boots with UEFI" });
    expect(byId.get(busy)).toMatchObject({ act: false, reason: "busy" });
    expect(p.transitions).toEqual([{ label: "Available → Deploying", count: 2 }]);
    expect(p.changes).toContainEqual({ label: "Power cycle", count: 2 });
    expect(p.skipTotals.map((t) => t.count).reduce((a, b) => a + b)).toBe(5);

    // Without a chosen profile, each machine's own: ok2 has none.
    const own2 = await h.operator.machines.plan({ selection: { ids: [ok1, ok2] }, op: { type: "action", action: "deploy" } });
    expect(own2.rows.find((r) => r.id === ok2)).toMatchObject({ act: false, reason: "no_profile" });
    expect(own2.rows.find((r) => r.id === ok1)).toMatchObject({ act: true, profile: "own-img" });
    h.db.delete(jobs).where(eq(jobs.machineId, busy)).run();
  });

  it("the batch takes exactly the confirmed plan: the typed count is the acting count, the chosen profile is recorded", async () => {
    const img = profile("batch-img");
    const a = await machine("available");
    const b = await machine("available");
    const skipped = await machine("enrolled");
    const selection = { ids: [a, b, skipped] };
    const p = await h.operator.machines.plan({ selection, op: { type: "batch", kind: "deploy", osProfileId: img } });
    expect(p.acting).toBe(2);
    // The selected number (3) is refused: the number that acts is 2.
    await expectTrpcError(
      h.operator.batches.create({ selection, kind: "deploy", osProfileId: img, planId: p.planId, confirmCount: 3 }),
      "BAD_REQUEST",
      "VALIDATION",
    );
    const created = await h.operator.batches.create({ selection, kind: "deploy", osProfileId: img, planId: p.planId, confirmCount: 2 });
    expect(created.queued).toBe(2);
    expect(created.skipped).toEqual([expect.objectContaining({ machineId: skipped, error: "Deploy is not allowed in state Enrolled" })]);
    for (const id of [a, b]) expect(h.db.select().from(machines).where(eq(machines.id, id)).get()!.osProfileId).toBe(img);
    const q = h.db.select().from(jobs).where(eq(jobs.batchId, created.batchId)).all();
    expect(q.map((j) => [j.machineId, j.kind, (j.params as { osProfileId: number }).osProfileId])).toEqual([
      [a, "deploy_image", img],
      [b, "deploy_image", img],
    ]);
    expect(h.db.select().from(batches).where(eq(batches.id, created.batchId)).get()).toBeTruthy();
  });

  it("refuses a plan that changed since it was confirmed (the plan is stale), and executes the new one", async () => {
    const a = await machine("deployed");
    const b = await machine("deployed");
    const selection = { ids: [a, b] };
    const p = await h.operator.machines.plan({ selection, op: { type: "power", action: "off" } });
    expect(p.acting).toBe(2);
    await h.operator.machines.update({ id: b, bmc: null });
    const { error } = await expectTrpcError(h.operator.oob.power({ selection, action: "off", planId: p.planId }), "CONFLICT", "PLAN_STALE");
    expect(error.message).toBe(STALE_PLAN_MESSAGE);
    const again = await h.operator.machines.plan({ selection, op: { type: "power", action: "off" } });
    expect(again).toMatchObject({ acting: 1, skipped: 1 });
    expect(again.planId).not.toBe(p.planId);
    const res = await h.operator.oob.power({ selection, action: "off", planId: again.planId });
    expect(res.find((r) => r.id === b)).toMatchObject({ ok: false, skipped: true, error: "has no BMC to switch its power" });
    expect(res.find((r) => r.id === a)).toMatchObject({ ok: true, powerState: "off" });
  });

  it("a changed OS profile makes the plan stale too", async () => {
    const img = profile("stale-img");
    const a = await machine("available", { profile: img });
    const p = await h.operator.machines.plan({ selection: { ids: [a] }, op: { type: "action", action: "deploy" } });
    h.db.update(osProfiles).set({ imageUrl: "http://127.0.0.1/other.raw.gz", updatedAt: new Date(Date.now() + 1000) }).where(eq(osProfiles.id, img)).run();
    await expectTrpcError(h.operator.machines.bulkAction({ selection: { ids: [a] }, action: "deploy", planId: p.planId }), "CONFLICT", "PLAN_STALE");
  });

  it("bulk set OS profile: sets it where it changes and fits, skips the rest, checks the profile", async () => {
    const old = profile("set-old");
    const uefiOnly = profile("set-uefi", { firmware: "uefi" });
    const a = await machine("available", { profile: old });
    const same = await machine("available", { profile: uefiOnly });
    const bios = await machine("deployed", { firmware: "bios" });
    const selection = { ids: [a, same, bios] };
    const p = await h.operator.machines.plan({ selection, op: { type: "setProfile", osProfileId: uefiOnly } });
    expect(p).toMatchObject({ title: "Set OS profile", acting: 1 });
    expect(p.rows.map((r) => [r.id, r.act, r.reason])).toEqual([
      [a, true, null],
      [same, false, "unchanged"],
      [bios, false, "firmware"],
    ]);
    expect(p.changes).toEqual([{ label: "OS profile: set-old → set-uefi", count: 1 }]);
    const res = await h.operator.machines.setOsProfile({ selection, osProfileId: uefiOnly, planId: p.planId });
    expect(res.filter((r) => r.ok).map((r) => r.id)).toEqual([a]);
    expect(h.db.select().from(machines).where(eq(machines.id, a)).get()!.osProfileId).toBe(uefiOnly);
    expect(h.db.select().from(machines).where(eq(machines.id, bios)).get()!.osProfileId).toBeNull();
    await expectTrpcError(h.operator.machines.setOsProfile({ selection, osProfileId: 999_999 }), "NOT_FOUND");
    await expectTrpcError(h.viewer.machines.setOsProfile({ selection, osProfileId: uefiOnly }), "FORBIDDEN");
    await expectTrpcError(h.viewer.machines.plan({ selection, op: { type: "setProfile", osProfileId: uefiOnly } }), "FORBIDDEN");
  });

  it("the server checks a chosen profile whatever the UI sends", async () => {
    const noUrl = profile("no-url", { imageUrl: null });
    const a = await machine("available");
    await expectTrpcError(h.operator.machines.plan({ selection: { ids: [a] }, op: { type: "action", action: "deploy", osProfileId: 999_999 } }), "NOT_FOUND");
    await expectTrpcError(h.operator.machines.plan({ selection: { ids: [a] }, op: { type: "action", action: "deploy", osProfileId: noUrl } }), "BAD_REQUEST");
    await expectTrpcError(h.operator.machines.plan({ selection: { ids: [a] }, op: { type: "action", action: "inspect", osProfileId: noUrl } }), "BAD_REQUEST");
    await expectTrpcError(h.operator.machines.action({ id: a, action: "deploy", osProfileId: noUrl }), "BAD_REQUEST", "VALIDATION");
    await expectTrpcError(h.operator.machines.action({ id: a, action: "manage", osProfileId: noUrl }), "BAD_REQUEST", "VALIDATION");
    await expectTrpcError(h.operator.machines.bulkAction({ selection: { ids: [a] }, action: "deploy", planId: "x".repeat(64) }), "BAD_REQUEST");
    // One machine, deploy with a chosen profile: started and recorded on the machine.
    const img = profile("one-img", { firmware: "uefi" });
    const u = await machine("available", { firmware: "bios" });
    await expectTrpcError(h.operator.machines.action({ id: u, action: "deploy", osProfileId: img }), "BAD_REQUEST", "VALIDATION");
    const ok = await h.operator.machines.action({ id: a, action: "deploy", osProfileId: img });
    expect(ok).toMatchObject({ from: "available", to: "deploying" });
    expect(h.db.select().from(machines).where(eq(machines.id, a)).get()!.osProfileId).toBe(img);
  });

  it("release, abort and manage plans: state names and what they do", async () => {
    const enrolled = await machine("enrolled");
    const deployed = await machine("deployed");
    const rel = await h.operator.machines.plan({ selection: { ids: [enrolled, deployed] }, op: { type: "batch", kind: "clean" } });
    expect(rel).toMatchObject({ title: "Release", acting: 1, transitions: [{ label: "Deployed → Cleaning", count: 1 }] });
    expect(rel.rows.find((r) => r.id === enrolled)!.detail).toBe("Release is not allowed in state Enrolled");
    const man = await h.operator.machines.plan({ selection: { ids: [enrolled] }, op: { type: "action", action: "manage" } });
    expect(man.rows[0]).toMatchObject({ act: true, to: "manageable", changes: ["BMC credentials verified"] });
    const empty = await h.operator.machines.plan({ selection: { filter: { q: "no-such-machine-anywhere" } }, op: { type: "action", action: "abort" } });
    expect(empty).toMatchObject({ total: 0, acting: 0, rows: [] });
  });
});

describe("computePlanIn (reads through the Store)", () => {
  it("plans a filter selection as its ids in name order, and a selection of over 500 ids (IN lists in chunks) row for row", async () => {
    // A failed deploy for the retry plan.
    const { id } = await h.operator.machines.enroll(machineInput(990, { bmc: { driver: "fake", address: "127.0.0.1", username: "u", password: "p" } }));
    await driveTo(h.domain, id, "deploy_failed");
    h.db.insert(jobs).values({ machineId: id, kind: "deploy_image", state: "failed", params: {}, createdBy: "test", createdAt: new Date() }).run();
    const ids = h.db.select({ id: machines.id }).from(machines).orderBy(machines.name).all().map((m) => m.id);
    const profile = h.db.select({ id: osProfiles.id }).from(osProfiles).all()[0]!.id;
    const ops: BulkOp[] = [
      { type: "action", action: "deploy" },
      { type: "action", action: "retry" },
      { type: "action", action: "abort" },
      { type: "batch", kind: "reinstall", osProfileId: profile },
      { type: "batch", kind: "clean" },
      { type: "power", action: "off" },
      { type: "setProfile", osProfileId: profile },
      { type: "action", action: "deploy", osProfileId: 999_999 },
    ];
    const outcome = async (f: () => Promise<FullPlan>) => {
      try {
        return await f();
      } catch (err) {
        return { error: String(err) };
      }
    };
    // 700 ids that name no machine first: the real ones fall in the second and third chunk of 500.
    const missing = Array.from({ length: 700 }, (_, i) => 500_000 + i);
    let acting = 0;
    for (const op of ops) {
      const byIds = await outcome(() => computePlanIn(h.domain, { ids }, op));
      expect(await outcome(() => computePlanIn(h.domain, { filter: {} }, op)), JSON.stringify(op)).toEqual(byIds);
      const wide = await outcome(() => computePlanIn(h.domain, { ids: [...missing, ...ids] }, op));
      if ("error" in byIds) {
        expect(wide).toEqual(byIds);
        continue;
      }
      if ("error" in wide) throw new Error(wide.error);
      expect(wide.rows.slice(missing.length)).toEqual(byIds.rows);
      expect(wide.rows.slice(0, missing.length).every((r) => !r.act && r.reason === "missing")).toBe(true);
      expect(wide.acting).toBe(byIds.acting);
      acting += byIds.acting;
    }
    expect(ids.length).toBeGreaterThan(5);
    expect(acting).toBeGreaterThan(0);
  });
});
