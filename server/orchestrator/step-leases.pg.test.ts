import { asc, eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { stepLeaseFixture } from "../testing/step-lease-fixture";
import { until } from "../testing/until";
import { startJob } from "./job-state";
import { Orchestrator } from "./orchestrator";
import { prepareQueries } from "./orchestrator-queries";
import type { MachinePorts } from "./ports";

/**
 * Several processes on one database exist only on PostgreSQL: on SQLite one process owns the file and runs every
 * step (its restart is covered by orchestrator.test.ts, "resumes after a crash"). This file runs only in the
 * `postgres` vitest project (*.pg.test.ts); the single-process cases run on both stores in step-leases.test.ts.
 */
const f = stepLeaseFixture();
const { countingPorts, engine, machines, jobStates } = f;

describe("several processes on PostgreSQL", () => {
  it("two processes share the steps: each runs exactly once, every job finishes", async () => {
    const calls = new Map<string, number>();
    const ran = { a: 0, b: 0 };
    const ports = (who: "a" | "b"): MachinePorts => {
      const inner = countingPorts(calls);
      return { ...inner, powerCycle: (m) => (ran[who]++, inner.powerCycle(m)) };
    };
    const a = engine(ports("a"), "proc-a:1");
    const b = engine(ports("b"), "proc-b:2");
    await Promise.all([a.start(), b.start()]);
    const ids = await machines(40);
    const jobIds = await Promise.all(ids.map(async (m) => (await startJob(f.h.domain, { machineId: m, kind: "power_cycle" }, "test")).jobId));
    await until("every job succeeded", async () => (await jobStates(jobIds)).every((s) => s === "succeeded"), 50_000);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(calls.size).toBe(ids.length);
    expect(ran.a + ran.b).toBe(ids.length);
    // 40 enrollments and 80 transactions on two pools: about 1 s alone, 20 s once at the start of a loaded full run.
  }, 60_000);

  it("a process that dies mid-step loses its lease; another takes the step over with the same attempt and finishes the job", async () => {
    const [m] = await machines(1);
    const callsA = new Map<string, number>();
    const a = engine(countingPorts(callsA, () => true), "dying:1", 600);
    await a.start();
    const { jobId } = await startJob(f.h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = f.h.store;
    const step = async () => (await db.select().from(t.steps).where(eq(t.steps.jobId, jobId)))[0]!;
    await until("A runs the step", async () => (await step()).leaseOwner === "dying:1" && callsA.get(`cycle:${m}`) === 1, 10_000);
    const held = await step();
    expect(held).toMatchObject({ state: "running", attempt: 1 });
    // A "dies": it stops renewing and will never report (its BMC call hangs). Not awaited: stop() waits for it.
    void a.stop();
    const callsB = new Map<string, number>();
    const b = engine(countingPorts(callsB), "survivor:2", 600);
    await b.start();
    await until("job succeeded", async () => (await jobStates([jobId]))[0] === "succeeded", 10_000);
    expect(callsB.get(`cycle:${m}`)).toBe(1);
    expect(await step()).toMatchObject({ state: "succeeded", attempt: 1, leaseOwner: null });
    // The lease must have lapsed first: B could not take a step A still held.
    expect((await step()).finishedAt!.getTime()).toBeGreaterThan(held.leaseExpiresAt!.getTime());
    f.forget(a);
  });

  it("a former holder's late outcome changes nothing after a takeover", async () => {
    const [m] = await machines(1);
    let releaseA: () => void = () => {};
    // A stalls (no tick, no renewal for a minute) while its BMC call hangs.
    const a = engine({ ...countingPorts(new Map()), powerCycle: () => new Promise<void>((r) => (releaseA = r)) }, "slow:1", 60_000, 3_600_000);
    await a.start();
    const { jobId } = await startJob(f.h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = f.h.store;
    const step = async () => (await db.select().from(t.steps).where(eq(t.steps.jobId, jobId)))[0]!;
    await until("A runs the step", async () => (await step()).leaseOwner === "slow:1", 10_000);
    // Its lease lapses (as it would, unrenewed, after leaseMs).
    await db.update(t.steps).set({ leaseExpiresAt: new Date(Date.now() - 1000) }).where(eq(t.steps.jobId, jobId));
    let releaseB: () => void = () => {};
    const b = engine({ ...countingPorts(new Map()), powerCycle: () => new Promise<void>((r) => (releaseB = r)) }, "taker:2", 60_000);
    await b.start();
    await until("B took the step over", async () => (await step()).leaseOwner === "taker:2", 10_000);
    releaseA(); // A's outcome arrives late: refused (not its lease any more)
    await new Promise((r) => setTimeout(r, 300));
    expect(await step()).toMatchObject({ state: "running", leaseOwner: "taker:2" });
    releaseB();
    await until("job succeeded", async () => (await jobStates([jobId]))[0] === "succeeded", 10_000);
  });

  it("a job whose step a dying process finished, but never advanced, is advanced by a survivor's tick", async () => {
    const [m] = await machines(1);
    // A holds the job's only step, its BMC call hanging.
    const a = engine(countingPorts(new Map(), () => true), "finisher:1", 60_000, 3_600_000);
    await a.start();
    const { jobId } = await startJob(f.h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = f.h.store;
    const step = async () => (await db.select().from(t.steps).where(eq(t.steps.jobId, jobId)))[0]!;
    await until("A runs the step", async () => (await step()).leaseOwner === "finisher:1", 10_000);
    const b = engine(countingPorts(new Map()), "survivor:2", 60_000);
    await b.start();
    await new Promise((r) => setTimeout(r, 300));
    expect((await jobStates([jobId]))[0]).toBe("running");
    // A commits the step's success and dies before its advance: nothing of A's will touch the job again.
    void a.stop();
    f.forget(a);
    await db.update(t.steps).set({ state: "succeeded", leaseOwner: null, leaseExpiresAt: null, finishedAt: new Date() }).where(eq(t.steps.jobId, jobId));
    await until("B's tick finished the job", async () => (await jobStates([jobId]))[0] === "succeeded", 10_000);
  });

  it("jobs of several groups, two steps in a group, two processes: every step once, groups in order (a step's outcome advances its job in its own transaction)", async () => {
    const ids = await machines(16);
    const { db, t } = f.h.store;
    const jobIds: number[] = [];
    for (const m of ids) {
      const { jobId } = await startJob(f.h.domain, { machineId: m, kind: "power_cycle" }, "test");
      jobIds.push(jobId);
      // [target, device], [cycle], [on, off]: two steps of a group finish at once, possibly on two processes.
      await db.update(t.steps).set({ group: 1 }).where(eq(t.steps.jobId, jobId));
      const step = (group: number, name: string, params: Record<string, unknown> = {}) => ({ jobId, group, name, runner: "server" as const, params, state: "pending", maxAttempts: 3, timeoutS: 120 });
      await db.insert(t.steps).values([step(0, "set_boot_target", { target: "disk" }), step(0, "set_boot_device", { device: "disk", persistent: true }), step(2, "power_on"), step(2, "power_off")]);
    }
    const calls = new Map<string, number>();
    // Each call takes a few ms, so that the two steps of a group end close together.
    const slow = (): MachinePorts => {
      const inner = countingPorts(calls);
      const later = <A extends unknown[]>(fn: (...a: A) => Promise<void>) => async (...a: A) => (await new Promise((r) => setTimeout(r, 5 + Math.random() * 10)), fn(...a));
      return { setBootTarget: later(inner.setBootTarget), setBootDevice: later(inner.setBootDevice), powerOn: later(inner.powerOn), powerCycle: later(inner.powerCycle), powerOff: later(inner.powerOff) };
    };
    await Promise.all([engine(slow(), "groups-a:1").start(), engine(slow(), "groups-b:2").start()]);
    await until("every job succeeded", async () => (await jobStates(jobIds)).every((s) => s === "succeeded"), 30_000);
    expect(calls.size).toBe(ids.length * 5);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    const steps = await db.select().from(t.steps).where(inArray(t.steps.jobId, jobIds)).orderBy(asc(t.steps.id));
    expect(steps.every((s) => s.state === "succeeded" && s.attempt === 1)).toBe(true);
    for (const jobId of jobIds) {
      const of = steps.filter((s) => s.jobId === jobId);
      for (const g of [1, 2]) {
        const prevEnd = Math.max(...of.filter((s) => s.group === g - 1).map((s) => s.finishedAt!.getTime()));
        for (const s of of.filter((x) => x.group === g)) expect(s.startedAt!.getTime()).toBeGreaterThanOrEqual(prevEnd);
      }
    }
  }, 40_000);

  it("the outcome of a group's last step readies the next group in its own transaction; two outcomes at once ready it once", async () => {
    const [m] = await machines(1);
    const { jobId } = await startJob(f.h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = f.h.store;
    // Two running agent steps in group 0 (the job's own step, made an agent's), the next group an agent step.
    await db.update(t.steps).set({ runner: "agent", name: "wipe", state: "running", attempt: 1, startedAt: new Date() }).where(eq(t.steps.jobId, jobId));
    const [second] = await db.insert(t.steps).values({ jobId, group: 0, name: "write_image", runner: "agent", state: "running", attempt: 1, maxAttempts: 3, timeoutS: 120, startedAt: new Date() }).returning();
    const [next] = await db.insert(t.steps).values({ jobId, group: 1, name: "configure_network", runner: "agent", state: "pending", maxAttempts: 3, timeoutS: 120 }).returning();
    const first = (await db.select().from(t.steps).where(eq(t.steps.jobId, jobId)).orderBy(asc(t.steps.id)))[0]!;
    // Not started: no tick and no pass of its own; only complete() moves the job.
    const o = new Orchestrator(f.h.domain, countingPorts(new Map()), { owner: "direct:1" });
    const before = f.h.published.length;
    expect(await Promise.all([o.complete(first.id, 1, { ok: true }), o.complete(second!.id, 1, { ok: true })])).toEqual([true, true]);
    // Read before anything else runs: an advance in a pass of its own (setImmediate) would not have published yet.
    const readied = f.h.published.slice(before).filter((e) => e.type === "step.changed" && e.stepId === next!.id && e.state === "ready");
    expect(readied).toHaveLength(1);
    expect((await db.select({ state: t.steps.state }).from(t.steps).where(eq(t.steps.id, next!.id)))[0]!.state).toBe("ready");
    await o.stop();
  });

  it("an outcome is written only while the step runs the same attempt under the same holder (the guard of an unlocked read)", async () => {
    const [m] = await machines(1);
    const { jobId } = await startJob(f.h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = f.h.store;
    const q = prepareQueries(f.h.store);
    const [step] = await db.update(t.steps).set({ state: "running", attempt: 1, leaseOwner: "holder:1", startedAt: new Date() }).where(eq(t.steps.jobId, jobId)).returning();
    const outcome = { id: step!.id, state: "succeeded", nextAttemptAt: null, finishedAt: new Date(), error: null, result: JSON.stringify({ ok: "yes" }) };
    // Taken over by another holder, another attempt, or an agent's lease (no holder): nothing written.
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 1, owner: "other:2" })).toBeUndefined();
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 2, owner: "holder:1" })).toBeUndefined();
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 1, owner: null })).toBeUndefined();
    expect((await db.select().from(t.steps).where(eq(t.steps.id, step!.id)))[0]).toMatchObject({ state: "running", leaseOwner: "holder:1" });
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 1, owner: "holder:1" })).toMatchObject({ id: step!.id, state: "succeeded", leaseOwner: null, result: { ok: "yes" } });
    // Written once: a second outcome of the same attempt finds it no longer running.
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 1, owner: null })).toBeUndefined();
    // An agent's lease (no holder) is matched by a null owner.
    await db.update(t.steps).set({ state: "running", attempt: 2, leaseOwner: null }).where(eq(t.steps.id, step!.id));
    expect(await q.finishHeldStep!(db, { ...outcome, attempt: 2, owner: null })).toMatchObject({ state: "succeeded", attempt: 2 });
  });
});
