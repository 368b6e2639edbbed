import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { transition } from "../../machines/lifecycle";
import { startJob } from "../../orchestrator/job-state";
import { expectTrpcError, machineInput } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

let h: Harness;

/** A manageable machine with a running inspect job (no orchestrator runs here: the job stays where it is). */
async function machineWithJob(n: number): Promise<{ machineId: number; jobId: number }> {
  const { id } = await h.operator.machines.enroll(machineInput(n));
  await transition(h.domain, id, "manage", { actor: "test" });
  const { jobId } = await startJob(h.domain, { machineId: id, kind: "inspect" }, "user:test");
  return { machineId: id, jobId };
}

async function insertLines(jobId: number, from: number, to: number, stream = "stdout") {
  const stepId = (await h.store.db.select({ id: h.store.t.steps.id }).from(h.store.t.steps).where(eq(h.store.t.steps.jobId, jobId)))[0]!.id;
  const rows = Array.from({ length: to - from + 1 }, (_, i) => ({ jobId, stepId, seq: from + i, ts: new Date(1_700_000_000_000 + from + i), stream, text: `line ${from + i}` }));
  // In chunks: SQLite limits the variables of one statement.
  await h.store.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += 1000) await tx.insert(h.store.t.logLines).values(rows.slice(i, i + 1000));
  });
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("jobs.forMachine", () => {
  it("lists a machine's jobs newest first with their steps in group order", async () => {
    const { machineId, jobId } = await machineWithJob(1);
    await h.store.db.update(h.store.t.jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(h.store.t.jobs.id, jobId));
    await h.store.db.update(h.store.t.machines).set({ state: "manageable" }).where(eq(h.store.t.machines.id, machineId));
    const second = (await startJob(h.domain, { machineId, kind: "inspect" }, "user:test")).jobId;
    const list = await h.viewer.jobs.forMachine({ machineId });
    expect(list.map((j) => j.id)).toEqual([second, jobId]);
    expect(list[0]).toMatchObject({ kind: "inspect", state: "running", createdBy: "user:test", machineId });
    const groups = list[0]!.steps.map((s) => s.group);
    expect(groups).toEqual([...groups].sort((a, b) => a - b));
    expect(list[0]!.steps.map((s) => s.name).slice(0, 3).sort()).toEqual(["power_cycle", "set_boot_device", "set_boot_target"]);
    expect(list[0]!.steps[0]).toMatchObject({ state: "pending", attempt: 0, maxAttempts: expect.any(Number), runner: "server" });
    expect(await h.viewer.jobs.forMachine({ machineId, limit: 1 })).toHaveLength(1);
    expect(await h.viewer.jobs.forMachine({ machineId: 99_999 })).toEqual([]);
  });
});

describe("jobs.logs", () => {
  it("pages through a job's lines with afterSeq, in seq order, with stream and step", async () => {
    const { jobId } = await machineWithJob(2);
    await insertLines(jobId, 0, 11_999);
    await insertLines(jobId, 12_000, 12_000, "stderr");
    const first = await h.viewer.jobs.logs({ jobId });
    expect(first).toHaveLength(1000);
    expect(first[0]).toMatchObject({ seq: 0, stream: "stdout", text: "line 0", ts: 1_700_000_000_000, stepId: expect.any(Number) });
    const seen: number[] = [];
    let after = -1;
    for (;;) {
      const page = await h.viewer.jobs.logs({ jobId, afterSeq: after, limit: 5000 });
      seen.push(...page.map((l) => l.seq));
      if (page.length < 5000) break;
      after = page.at(-1)!.seq;
    }
    expect(seen).toHaveLength(12_001);
    expect(seen.every((s, i) => s === i)).toBe(true);
    expect((await h.viewer.jobs.logs({ jobId, afterSeq: 11_999 }))[0]).toMatchObject({ seq: 12_000, stream: "stderr" });
    expect(await h.viewer.jobs.logs({ jobId, afterSeq: 12_000 })).toEqual([]);
  });

  it("refuses pages over 5,000 lines and negative cursors below -1", async () => {
    const { jobId } = await machineWithJob(3);
    await expectTrpcError(h.viewer.jobs.logs({ jobId, limit: 5001 }), "BAD_REQUEST", "VALIDATION");
    await expectTrpcError(h.viewer.jobs.logs({ jobId, afterSeq: -2 }), "BAD_REQUEST", "VALIDATION");
  });
});

describe("jobs.cancel", () => {
  it("cancels the running job and its open steps; the machine goes to inspect_failed; the timeline shows it", async () => {
    const { machineId, jobId } = await machineWithJob(4);
    h.published.length = 0;
    expect(await h.operator.jobs.cancel({ jobId })).toEqual({ ok: true });
    const [job] = await h.viewer.jobs.forMachine({ machineId });
    expect(job).toMatchObject({ id: jobId, state: "cancelled", error: "cancelled by operator" });
    expect(job!.steps.every((s) => s.state === "cancelled")).toBe(true);
    expect((await h.store.db.select().from(h.store.t.machines).where(eq(h.store.t.machines.id, machineId)))[0]!.state).toBe("inspect_failed");
    expect(h.published).toContainEqual(expect.objectContaining({ type: "job.changed", jobId, machineId, state: "cancelled" }));
  });

  it("refuses a finished job (CONFLICT) and an unknown one (NOT_FOUND)", async () => {
    const { jobId } = await machineWithJob(5);
    await h.operator.jobs.cancel({ jobId });
    await expectTrpcError(h.operator.jobs.cancel({ jobId }), "CONFLICT");
    await expectTrpcError(h.operator.jobs.cancel({ jobId: 99_999 }), "NOT_FOUND");
  });

  it("is for operators: a viewer is refused and the job keeps running", async () => {
    const { jobId } = await machineWithJob(6);
    await expectTrpcError(h.viewer.jobs.cancel({ jobId }), "FORBIDDEN");
    await expectTrpcError(h.anonymous.jobs.cancel({ jobId }), "UNAUTHORIZED");
    await expectTrpcError(h.anonymous.jobs.logs({ jobId }), "UNAUTHORIZED");
    await expectTrpcError(h.anonymous.jobs.forMachine({ machineId: 1 }), "UNAUTHORIZED");
    expect((await h.store.db.select().from(h.store.t.jobs).where(eq(h.store.t.jobs.id, jobId)))[0]!.state).toBe("running");
  });
});

describe("power and boot device by hand on a machine that runs a job", () => {
  it("leaves that machine alone with MACHINE_BUSY and powers the others", async () => {
    const bmc = { driver: "fake" as const, address: "10.9.8.7", username: "u", password: "p" };
    const { id: busy } = await h.operator.machines.enroll(machineInput(40, { bmc }));
    const { id: idle } = await h.operator.machines.enroll(machineInput(41, { bmc: { ...bmc, address: "10.9.8.8" } }));
    const { jobId } = await startJob(h.domain, { machineId: busy, kind: "power_cycle" }, "user:test");
    const results = await h.operator.oob.power({ selection: { ids: [busy, idle] }, action: "on" });
    expect(results[0]).toMatchObject({ id: busy, ok: false, code: "MACHINE_BUSY" });
    expect(results[0]!.error).toBe(`power cycle job #${jobId} is running; cancel it before changing the power by hand`);
    expect(results[1]).toMatchObject({ id: idle, ok: true, powerState: "on" });
    const refused = await expectTrpcError(h.operator.oob.bootDevice({ id: busy, device: "disk" }), "CONFLICT", "MACHINE_BUSY");
    expect(refused.error.message).toBe(`power cycle job #${jobId} is running; cancel it before changing the boot device by hand`);
    await h.operator.oob.bootDevice({ id: idle, device: "disk" });
    // Once the job ended, the machine is the operator's again.
    await h.store.db.update(h.store.t.jobs).set({ state: "succeeded", finishedAt: new Date() }).where(eq(h.store.t.jobs.id, jobId));
    expect((await h.operator.oob.power({ selection: { ids: [busy] }, action: "on" }))[0]).toMatchObject({ ok: true, powerState: "on" });
  });
});

describe("retry of a failed deploy", () => {
  it("plans the deploy again from the current OS profile (the operator fixed the checksum); other kinds keep their params", async () => {
    const profile = (await h.store.db
      .insert(h.store.t.osProfiles)
      .values({ name: "retry-img", kind: "image", osFamily: "debian", imageUrl: "http://10.0.0.1/a.raw.gz", imageSha256: "aa".repeat(32), imageFormat: "raw.gz", createdAt: new Date(), updatedAt: new Date() })
      .returning())[0]!;
    const { id } = await h.operator.machines.enroll(machineInput(50, { osProfileId: profile.id }));
    for (const a of ["manage", "provide"] as const) await transition(h.domain, id, a, { actor: "test" });
    const first = await h.operator.machines.action({ id, action: "deploy" });
    const failed = (await h.store.db.select().from(h.store.t.jobs).where(eq(h.store.t.jobs.id, first.jobId!)))[0]!;
    expect(failed.params).toMatchObject({ imageSha256: "aa".repeat(32) });
    await h.store.db.update(h.store.t.jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(h.store.t.jobs.id, failed.id));
    await transition(h.domain, id, "fail", { actor: "system", reason: "write_image: sha256 mismatch" });
    await h.store.db.update(h.store.t.osProfiles).set({ imageSha256: "bb".repeat(32), imageUrl: "http://10.0.0.1/b.raw.gz" }).where(eq(h.store.t.osProfiles.id, profile.id));

    const retry = await h.operator.machines.action({ id, action: "retry" });
    expect(retry).toMatchObject({ from: "deploy_failed", to: "deploying" });
    const again = (await h.store.db.select().from(h.store.t.jobs).where(eq(h.store.t.jobs.id, retry.jobId!)))[0]!;
    expect(again.kind).toBe("deploy_image");
    expect(again.params).toMatchObject({ imageSha256: "bb".repeat(32), imageUrl: "http://10.0.0.1/b.raw.gz" });

    // A failed release (clean) is retried with the wipe it was started with.
    await h.store.db.update(h.store.t.jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(h.store.t.jobs.id, again.id));
    await h.store.db.update(h.store.t.machines).set({ state: "deployed" }).where(eq(h.store.t.machines.id, id));
    const clean = await startJob(h.domain, { machineId: id, kind: "clean", params: { wipeMode: "discard" } }, "user:test");
    await h.store.db.update(h.store.t.jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(h.store.t.jobs.id, clean.jobId));
    await h.store.db.update(h.store.t.machines).set({ state: "clean_failed" }).where(eq(h.store.t.machines.id, id));
    const cleanRetry = await h.operator.machines.action({ id, action: "retry" });
    expect((await h.store.db.select().from(h.store.t.jobs).where(eq(h.store.t.jobs.id, cleanRetry.jobId!)))[0]).toMatchObject({ kind: "clean", params: { wipeMode: "discard" } });
  });
});
