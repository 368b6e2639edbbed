import { eq, inArray } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { machineInput } from "../testing/fixtures";
import { until } from "../testing/until";
import { startBatch } from "../operator/bulk-actions";
import { BatchRunner } from "./batch-runner";
import { startJob } from "./job-state";
import { Orchestrator } from "./orchestrator";
import type { MachinePorts } from "./ports";

/**
 * Server steps through the Store, on both databases (the `postgres` vitest project runs this file again). On SQLite
 * the one process runs a server step as it starts it; on PostgreSQL a started step becomes ready and a process takes
 * it with claimSteps (FOR UPDATE SKIP LOCKED, a lease renewed while it runs: server/db/pg/leases.ts). Power jobs
 * move no lifecycle state, which server/machines (not on the Store yet) would write.
 */
let h: Harness;
const engines: Orchestrator[] = [];

beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await Promise.all(engines.splice(0).map((o) => o.stop()));
  h.close();
});

/** Ports that count each call per machine (and may be told to hang). */
function countingPorts(calls: Map<string, number>, hang: (m: number) => boolean = () => false): MachinePorts {
  const note = (what: string, m: number) => {
    calls.set(`${what}:${m}`, (calls.get(`${what}:${m}`) ?? 0) + 1);
    return hang(m) ? new Promise<void>(() => {}) : Promise.resolve();
  };
  return {
    setBootTarget: (m) => note("target", m),
    setBootDevice: (m) => note("device", m),
    powerOn: (m) => note("on", m),
    powerCycle: (m) => note("cycle", m),
    powerOff: (m) => note("off", m),
  };
}

function engine(ports: MachinePorts, owner: string, leaseMs = 15_000, tickMs = 100): Orchestrator {
  const o = new Orchestrator(h.domain, ports, { tickMs, owner, leaseMs });
  engines.push(o);
  return o;
}

async function machines(n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 1; i <= n; i++) ids.push((await h.operator.machines.enroll(machineInput(i))).id);
  await h.mirrorMachines(ids);
  return ids;
}

async function jobStates(ids: number[]): Promise<string[]> {
  const { db, t } = h.store;
  return (await db.select({ state: t.jobs.state }).from(t.jobs).where(inArray(t.jobs.id, ids))).map((j) => j.state);
}

describe(`server steps on ${testStoreKind()}`, () => {
  it("runs every power job's step exactly once and finishes the jobs", async () => {
    const calls = new Map<string, number>();
    const o = engine(countingPorts(calls), "solo:1");
    await o.start();
    const ids = await machines(12);
    const jobIds: number[] = [];
    for (const m of ids) jobIds.push((await startJob(h.domain, { machineId: m, kind: "power_cycle" }, "test")).jobId);
    await until("every job succeeded", async () => (await jobStates(jobIds)).every((s) => s === "succeeded"), 15_000);
    expect([...calls.entries()].sort()).toEqual(ids.map((m) => [`cycle:${m}`, 1] as const).sort());
    const { db, t } = h.store;
    const steps = await db.select().from(t.steps).where(inArray(t.steps.jobId, jobIds));
    expect(steps.map((s) => [s.state, s.attempt, s.leaseOwner, s.leaseExpiresAt])).toEqual(steps.map(() => ["succeeded", 1, null, null]));
  });
});

describe(`a power batch on ${testStoreKind()}`, () => {
  it("runs every machine's job through the batch runner, never more than its concurrency at once, and finishes", async () => {
    const ids: number[] = [];
    for (let i = 1; i <= 9; i++) {
      ids.push((await h.operator.machines.enroll(machineInput(i, { bmc: { driver: "fake", address: `10.9.11.${i}`, username: "u", password: "p" } }))).id);
    }
    await h.mirrorMachines(ids);
    let running = 0;
    let most = 0;
    const cycled: number[] = [];
    const slow: MachinePorts = {
      ...countingPorts(new Map()),
      powerCycle: async (m) => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 40));
        running--;
        cycled.push(m);
      },
    };
    const o = engine(slow, "batch:1");
    const runner = new BatchRunner(h.domain, { baseUrl: "http://127.0.0.1:9" });
    await Promise.all([o.start(), runner.start()]);
    try {
      const { batchId } = await startBatch(h.domain, { selection: { ids }, kind: "power_cycle", concurrency: 3, failureThresholdPct: 100, confirmCount: ids.length }, "user:test");
      const { db, t } = h.store;
      await until("batch finished", async () => (await db.select().from(t.batches).where(eq(t.batches.id, batchId)))[0]!.state === "finished", 20_000);
      const jobs = await db.select().from(t.jobs).where(eq(t.jobs.batchId, batchId));
      expect(jobs.map((j) => j.state)).toEqual(ids.map(() => "succeeded"));
      expect(cycled.sort((a, b) => a - b)).toEqual(ids);
      expect(most).toBeLessThanOrEqual(3);
      expect(most).toBeGreaterThan(1);
    } finally {
      await runner.stop();
    }
  });
});

// Several processes on one database exist only on PostgreSQL: on SQLite one process owns the file and runs every step
// (its restart is covered by orchestrator.test.ts, "resumes after a crash").
describe.runIf(testStoreKind() === "postgres")("several processes on PostgreSQL", () => {
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
    const jobIds = await Promise.all(ids.map(async (m) => (await startJob(h.domain, { machineId: m, kind: "power_cycle" }, "test")).jobId));
    await until("every job succeeded", async () => (await jobStates(jobIds)).every((s) => s === "succeeded"), 20_000);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(calls.size).toBe(ids.length);
    expect(ran.a + ran.b).toBe(ids.length);
  });

  it("a process that dies mid-step loses its lease; another takes the step over with the same attempt and finishes the job", async () => {
    const [m] = await machines(1);
    const callsA = new Map<string, number>();
    const a = engine(countingPorts(callsA, () => true), "dying:1", 600);
    await a.start();
    const { jobId } = await startJob(h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = h.store;
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
    engines.splice(engines.indexOf(a), 1);
  });

  it("a former holder's late outcome changes nothing after a takeover", async () => {
    const [m] = await machines(1);
    let releaseA: () => void = () => {};
    // A stalls (no tick, no renewal for a minute) while its BMC call hangs.
    const a = engine({ ...countingPorts(new Map()), powerCycle: () => new Promise<void>((r) => (releaseA = r)) }, "slow:1", 60_000, 3_600_000);
    await a.start();
    const { jobId } = await startJob(h.domain, { machineId: m!, kind: "power_cycle" }, "test");
    const { db, t } = h.store;
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
});
