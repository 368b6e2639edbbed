import { and, eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { batchAction, batchKindOf, BATCH_KINDS } from "../../lib/batches";
import { JOB_KIND_ACTION, JOB_KINDS, JOB_TRANSITIONS, STEP_TRANSITIONS, UNFINISHED_STEP_STATES } from "../../lib/jobs";
import { agentTokens, jobs, machines, steps } from "../db/schema";
import { transition } from "../machines/lifecycle";
import { createHarness, type Harness } from "../testing/harness";
import { AppError } from "../../lib/errors";
import { cancelJob, closeJob, startJob, withHandHold } from "./job-state";

let h: Harness;
let machineId: number;
const job = (id: number) => h.db.select().from(jobs).where(eq(jobs.id, id)).get()!;
const stepStates = (id: number) => h.db.select({ name: steps.name, state: steps.state }).from(steps).where(eq(steps.jobId, id)).all();
const machineState = () => h.db.select({ s: machines.state }).from(machines).where(eq(machines.id, machineId)).get()!.s;

beforeEach(async () => {
  h = createHarness();
  const m = await h.operator.machines.enroll({ name: "js-1", bootMac: "52:54:00:88:01:01" });
  machineId = m.id;
  await transition(h.domain, machineId, "manage", { actor: "test" });
});
afterEach(() => h.close());

describe("job and step state tables", () => {
  it("final job states have no way out; only active ones move", () => {
    for (const s of ["succeeded", "failed", "cancelled"] as const) expect(JOB_TRANSITIONS[s]).toEqual([]);
    expect(JOB_TRANSITIONS.queued).toContain("running");
    expect(JOB_TRANSITIONS.running).not.toContain("queued");
  });

  it("closing a job cancels exactly the unfinished step states", () => {
    expect([...UNFINISHED_STEP_STATES].sort()).toEqual(["pending", "ready", "running"]);
    for (const s of ["succeeded", "failed", "cancelled"] as const) expect(STEP_TRANSITIONS[s]).toEqual([]);
  });

  it("the kind → action mapping exists once: batches and the UI derive theirs from it", () => {
    expect(batchAction("deploy")).toBe("deploy");
    expect(batchAction("clean")).toBe("release");
    expect(batchAction("power_off")).toBeNull();
    expect(batchKindOf("release")).toBe("clean");
    expect(batchKindOf("reinstall")).toBe("reinstall");
    expect(batchKindOf("manage")).toBeUndefined();
    // Every non-power batch kind starts with an action some job kind declares.
    const actions = new Set(JOB_KINDS.map((k) => JOB_KIND_ACTION[k]));
    for (const k of BATCH_KINDS) expect(actions.has(batchAction(k))).toBe(true);
  });
});

describe("startJob / closeJob / cancelJob", () => {
  it("closing a job cancels its running, ready and pending steps and revokes its agent token", async () => {
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    expect(machineState()).toBe("inspecting");
    const [first, second] = h.db.select().from(steps).where(eq(steps.jobId, jobId)).orderBy(steps.id).all();
    h.db.update(steps).set({ state: "running", attempt: 1, leaseExpiresAt: new Date(Date.now() + 60_000) }).where(eq(steps.id, first!.id)).run();
    h.db.update(steps).set({ state: "failed", error: "boom" }).where(eq(steps.id, second!.id)).run();
    h.db.insert(agentTokens).values({ jobId, machineId, tokenHash: "x".repeat(64), createdAt: new Date() }).run();
    const live = await h.store.transaction((tx) => closeJob(h.domain, tx, job(jobId), { state: "failed", error: "boom", actor: "system" }));
    expect(live.some((e) => e.type === "job.changed" && e.state === "failed")).toBe(true);
    expect(job(jobId)).toMatchObject({ state: "failed", error: "boom" });
    const states = stepStates(jobId);
    expect(states.find((s) => s.name === first!.name && s.state === "cancelled")).toBeTruthy();
    expect(states.filter((s) => s.state === "failed")).toHaveLength(1);
    expect(states.every((s) => s.state === "cancelled" || s.state === "failed")).toBe(true);
    expect(h.db.select().from(steps).where(and(eq(steps.jobId, jobId), eq(steps.state, "cancelled"))).all().every((s) => s.leaseExpiresAt === null)).toBe(true);
    expect(h.db.select().from(agentTokens).where(eq(agentTokens.jobId, jobId)).get()!.revokedAt).not.toBeNull();
    expect(machineState()).toBe("inspect_failed");
  });

  it("refuses to close or cancel a job twice (the table has no move out of a final state)", async () => {
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await cancelJob(h.domain, jobId, "test");
    expect(job(jobId).state).toBe("cancelled");
    await expect(cancelJob(h.domain, jobId, "test")).rejects.toThrow(/already cancelled/);
    await expect(h.store.transaction((tx) => closeJob(h.domain, tx, job(jobId), { state: "succeeded", error: null, actor: "system" }))).rejects.toThrow(AppError);
    expect(job(jobId).state).toBe("cancelled");
  });

  it("a power job closes without moving the machine", async () => {
    const { jobId } = await startJob(h.domain, { machineId, kind: "power_off" }, "test");
    expect(machineState()).toBe("manageable");
    await cancelJob(h.domain, jobId, "test");
    expect(machineState()).toBe("manageable");
  });
});

describe("per-machine exclusivity between jobs and hand power", () => {
  const busy = () => new AppError("MACHINE_BUSY", "runs a job");

  it("a hand power action is refused while the machine runs a job", async () => {
    await startJob(h.domain, { machineId, kind: "power_on" }, "test");
    let ran = false;
    await expect(withHandHold(h.domain, machineId, "power", busy, async () => void (ran = true))).rejects.toMatchObject({ code: "MACHINE_BUSY" });
    expect(ran).toBe(false);
  });

  it("no job starts while an operator changes the machine's power by hand, and one starts after", async () => {
    let release!: () => void;
    const held = withHandHold(h.domain, machineId, "power", busy, () => new Promise<void>((r) => (release = r)));
    await expect(startJob(h.domain, { machineId, kind: "inspect" }, "test")).rejects.toThrow(/changing its power by hand/);
    expect(h.db.select().from(jobs).all()).toHaveLength(0);
    expect(machineState()).toBe("manageable");
    release();
    await held;
    expect((await startJob(h.domain, { machineId, kind: "inspect" }, "test")).jobId).toBeGreaterThan(0);
  });
});
