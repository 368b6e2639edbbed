import { eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { testStoreKind } from "../testing/harness";
import { machineInput } from "../testing/fixtures";
import { stepLeaseFixture } from "../testing/step-lease-fixture";
import { until } from "../testing/until";
import { startBatch } from "../operator/bulk-actions";
import { BatchRunner } from "./batch-runner";
import { startJob } from "./job-state";
import type { MachinePorts } from "./ports";

/**
 * Server steps through the Store, on both databases (the `postgres` vitest project runs this file again). On SQLite
 * the one process runs a server step as it starts it; on PostgreSQL a started step becomes ready and a process takes
 * it with claimSteps (FOR UPDATE SKIP LOCKED, a lease renewed while it runs: server/db/pg/leases.ts). Several
 * processes on one database: step-leases.pg.test.ts.
 */
const f = stepLeaseFixture();
const { countingPorts, engine, machines, jobStates } = f;

describe(`server steps on ${testStoreKind()}`, () => {
  it("runs every power job's step exactly once and finishes the jobs", async () => {
    const calls = new Map<string, number>();
    const o = engine(countingPorts(calls), "solo:1");
    await o.start();
    const ids = await machines(12);
    const jobIds: number[] = [];
    for (const m of ids) jobIds.push((await startJob(f.h.domain, { machineId: m, kind: "power_cycle" }, "test")).jobId);
    await until("every job succeeded", async () => (await jobStates(jobIds)).every((s) => s === "succeeded"), 15_000);
    expect([...calls.entries()].sort()).toEqual(ids.map((m) => [`cycle:${m}`, 1] as const).sort());
    const { db, t } = f.h.store;
    const steps = await db.select().from(t.steps).where(inArray(t.steps.jobId, jobIds));
    expect(steps.map((s) => [s.state, s.attempt, s.leaseOwner, s.leaseExpiresAt])).toEqual(steps.map(() => ["succeeded", 1, null, null]));
  });
});

describe(`a power batch on ${testStoreKind()}`, () => {
  it("runs every machine's job through the batch runner, never more than its concurrency at once, and finishes", async () => {
    const ids: number[] = [];
    for (let i = 1; i <= 9; i++) {
      ids.push((await f.h.operator.machines.enroll(machineInput(i, { bmc: { driver: "fake", address: `10.9.11.${i}`, username: "u", password: "p" } }))).id);
    }
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
    const runner = new BatchRunner(f.h.domain, { baseUrl: "http://127.0.0.1:9" });
    await Promise.all([o.start(), runner.start()]);
    try {
      const { batchId } = await startBatch(f.h.domain, { selection: { ids }, kind: "power_cycle", concurrency: 3, failureThresholdPct: 100, confirmCount: ids.length }, "user:test");
      const { db, t } = f.h.store;
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
