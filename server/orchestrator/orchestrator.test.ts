import { and, eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jobs, machines, osProfiles, steps } from "../db/schema";
import { transition } from "../machines/lifecycle";
import { createHarness, type Harness } from "../testing/harness";
import { until } from "../testing/until";
import { Orchestrator } from "./orchestrator";
import { performAction } from "../operator/lifecycle-actions";
import { startJob } from "./job-state";
import type { MachinePorts } from "./ports";
import { StepFailure } from "../../lib/step-failure";

let h: Harness;
let clock: number;
let machineId: number;
const ok: MachinePorts = {
  setBootTarget: async () => {},
  setBootDevice: async () => {},
  powerOn: async () => {},
  powerCycle: async () => {},
  powerOff: async () => {},
};
/** One turn of the event loop: the engine's pass queued by nudge() (setImmediate) has run. */
const nextPass = () => new Promise((r) => setImmediate(r));
const stepNamed = (jobId: number, name: string) => h.db.select().from(steps).where(and(eq(steps.jobId, jobId), eq(steps.name, name))).get()!;

beforeEach(async () => {
  h = createHarness();
  clock = 1_000_000;
  const m = await h.operator.machines.enroll({ name: "eng-1", bootMac: "52:54:00:88:00:01" });
  machineId = m.id;
  await transition(h.domain, machineId, "manage", { actor: "test" });
});
afterEach(() => h.close());

function engine(ports: MachinePorts = ok) {
  // A huge tick interval: the test drives time and ticks itself.
  return new Orchestrator(h.domain, ports, { tickMs: 3_600_000, now: () => clock, random: () => 0 });
}

describe("Orchestrator with a controlled clock", () => {
  it("times out an agent step whose lease expires, retries it, then fails the job after the last attempt", async () => {
    const o = engine();
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("wait_agent running", () => stepNamed(jobId, "wait_agent").state === "running");
    // Server groups ran; now the agent is "seen" and the inventory step is handed out.
    h.db.update(jobs).set({ agentSeenAt: new Date(clock) }).where(eq(jobs.id, jobId)).run();
    await o.tick();
    await until("inventory ready", async () => (await o.tick(), stepNamed(jobId, "inventory").state === "ready"));
    for (let attempt = 1; attempt <= 3; attempt++) {
      const claimed = await o.claimAgentSteps(jobId);
      expect(claimed).toEqual([expect.objectContaining({ name: "inventory", attempt })]);
      clock += 301_000; // past the 300 s timeout
      await o.tick();
      if (attempt < 3) {
        expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "pending", error: "inventory timed out after 300 s" });
        clock += 60_000; // past the backoff
        await o.tick();
      }
    }
    await until("job failed", () => h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()!.state === "failed");
    expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "failed", error: "inventory timed out after 300 s (after 3 attempts)" });
    expect(h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()).toMatchObject({ state: "failed" });
    await o.stop();
  });

  it("resumes after a crash: a server step that was running is run again by the next process, nothing is lost", async () => {
    let release: () => void = () => {};
    const calls: string[] = [];
    const hanging: MachinePorts = {
      ...ok,
      setBootTarget: async (_m, t) => void calls.push(`target:${t}`),
      powerCycle: () => {
        calls.push("cycle");
        return new Promise<void>((r) => (release = r));
      },
    };
    const first = engine(hanging);
    await first.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("power cycle running", () => stepNamed(jobId, "power_cycle").state === "running");
    expect(stepNamed(jobId, "power_cycle")).toMatchObject({ state: "running", attempt: 1 });
    // The process "dies" here: its in-flight power cycle never reports.
    const firstStopped = first.stop();
    const second = engine(ok);
    await second.start();
    await until("wait_agent running", () => stepNamed(jobId, "wait_agent").state === "running");
    expect(stepNamed(jobId, "power_cycle")).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(stepNamed(jobId, "wait_agent").state).toBe("running");
    // The stopped process's in-flight call ends: its outcome is dropped (the stopping guard), the step stays succeeded.
    release();
    await firstStopped;
    expect(await first.complete(stepNamed(jobId, "power_cycle").id, 1, { ok: false, transient: false, message: "late" })).toBe(false);
    expect(stepNamed(jobId, "power_cycle").state).toBe("succeeded");
    expect(calls).toEqual(["target:agent", "cycle"]);
    await second.stop();
  });

  it("refuses a late report from an attempt that timed out: only the attempt holding the lease counts", async () => {
    const o = engine();
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("wait_agent running", () => stepNamed(jobId, "wait_agent").state === "running");
    h.db.update(jobs).set({ agentSeenAt: new Date(clock) }).where(eq(jobs.id, jobId)).run();
    await until("inventory ready", async () => (await o.tick(), stepNamed(jobId, "inventory").state === "ready"));
    const [first] = await o.claimAgentSteps(jobId);
    expect(first).toMatchObject({ name: "inventory", attempt: 1 });
    clock += 301_000; // attempt 1 times out
    await o.tick();
    expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "pending", attempt: 1 });
    clock += 60_000; // past the backoff: attempt 2 is handed out and claimed
    await until("inventory ready again", async () => (await o.tick(), stepNamed(jobId, "inventory").state === "ready"));
    expect(await o.claimAgentSteps(jobId)).toEqual([expect.objectContaining({ name: "inventory", attempt: 2 })]);
    // The engine is running (not stopping) and the step is running: only the attempt number tells the two apart.
    expect(o.stopped).toBe(false);
    expect(stepNamed(jobId, "inventory").state).toBe("running");
    expect(await o.complete(first!.id, 1, { ok: false, transient: false, message: "late answer of attempt 1" })).toBe(false);
    expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "running", attempt: 2, error: "inventory timed out after 300 s" });
    expect(h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()!.state).toBe("running");
    // The attempt that holds the lease counts.
    expect(await o.complete(first!.id, 2, { ok: true })).toBe(true);
    expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "succeeded", attempt: 2 });
    await o.stop();
  });

  it("keeps an agent step's lease across a restart, so the agent's report still counts", async () => {
    const o = engine();
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("wait_agent running", () => stepNamed(jobId, "wait_agent").state === "running");
    h.db.update(jobs).set({ agentSeenAt: new Date(clock) }).where(eq(jobs.id, jobId)).run();
    await until("inventory ready", async () => (await o.tick(), stepNamed(jobId, "inventory").state === "ready"));
    const [s] = await o.claimAgentSteps(jobId);
    await o.stop();
    const again = engine();
    await again.start();
    expect(stepNamed(jobId, "inventory")).toMatchObject({ state: "running", attempt: 1 });
    expect(await again.complete(s!.id, 1, { ok: true })).toBe(true);
    expect(stepNamed(jobId, "inventory").state).toBe("succeeded");
    await again.stop();
  });
});

describe("Orchestrator driven by events alone (no tick)", () => {
  const jobState = (jobId: number) => h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()!.state;

  it("ends wait_agent when the agent is seen, and hands out the next step at once", async () => {
    const o = engine();
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("wait_agent running", () => stepNamed(jobId, "wait_agent").state === "running");
    h.db.update(jobs).set({ agentSeenAt: new Date(clock) }).where(eq(jobs.id, jobId)).run();
    await o.agentSeen(jobId, clock);
    expect(stepNamed(jobId, "wait_agent")).toMatchObject({ state: "succeeded", result: { agentSeenAt: clock } });
    await until("inventory ready", () => stepNamed(jobId, "inventory").state === "ready");
    await o.stop();
  });

  it("lets a wait_agent whose agent looked up early succeed as it starts, in the same pass", async () => {
    let release: () => void = () => {};
    const o = engine({ ...ok, powerCycle: () => new Promise<void>((r) => (release = r)) });
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("power cycle running", () => stepNamed(jobId, "power_cycle").state === "running");
    // The agent booted and looked up before the power cycle's confirmation came back.
    h.db.update(jobs).set({ agentSeenAt: new Date(clock) }).where(eq(jobs.id, jobId)).run();
    await o.agentSeen(jobId, clock);
    expect(stepNamed(jobId, "wait_agent").state).toBe("pending");
    release();
    await until("inventory ready", () => stepNamed(jobId, "inventory").state === "ready");
    const wait = stepNamed(jobId, "wait_agent");
    expect(wait).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(wait.startedAt!.getTime()).toBe(wait.finishedAt!.getTime());
    await o.stop();
  });

  it("ends a running wait_install when the installer reports", async () => {
    await transition(h.domain, machineId, "provide", { actor: "test" });
    const o = engine();
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "deploy_installer" }, "test");
    await until("wait_install running", () => stepNamed(jobId, "wait_install").state === "running");
    expect(await o.installDone(machineId)).toBe(true);
    expect(stepNamed(jobId, "wait_install").state).toBe("succeeded");
    await until("job succeeded", () => jobState(jobId) === "succeeded");
    await o.stop();
  });

  it("does not carry an installer's report into a retried job: the retry waits for its own installer", async () => {
    // The retry plans the deploy again from the machine's profile: an installer one.
    const profile = h.db
      .insert(osProfiles)
      .values({ name: "netinst", kind: "installer", osFamily: "debian", kernel: "debian/linux", initrd: "debian/initrd.gz", template: "preseed", createdAt: new Date(), updatedAt: new Date() })
      .returning()
      .get();
    h.db.update(machines).set({ osProfileId: profile.id }).where(eq(machines.id, machineId)).run();
    await transition(h.domain, machineId, "provide", { actor: "test" });
    let cycles = 0;
    // The first power cycle boots the installer; the one that boots the disk fails for good.
    const o = engine({ ...ok, powerCycle: async () => void (++cycles === 2 && (await Promise.reject(new StepFailure("BMC gone", false)))) });
    await o.start();
    const { jobId } = (await performAction(h.domain, machineId, "deploy", "user:test")) as { jobId: number };
    await until("wait_install running", () => stepNamed(jobId, "wait_install").state === "running");
    expect(await o.installDone(machineId)).toBe(true);
    await until("job failed", () => jobState(jobId) === "failed");
    expect(h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()!.kind).toBe("deploy_installer");
    const { jobId: retry } = (await performAction(h.domain, machineId, "retry", "user:test")) as { jobId: number };
    expect(retry).not.toBe(jobId);
    await until("the retry's wait_install started", () => stepNamed(retry, "wait_install").state !== "pending");
    await o.tick();
    await nextPass();
    expect(stepNamed(retry, "wait_install").state).toBe("running");
    expect(await o.installDone(machineId)).toBe(true);
    await until("retry succeeded", () => jobState(retry) === "succeeded");
    await o.stop();
  });

  it("starts a retry when its backoff is over, without waiting for a tick", async () => {
    let cycles = 0;
    const o = engine({
      ...ok,
      powerCycle: async () => {
        if (++cycles === 1) throw new StepFailure("BMC busy", true);
      },
    });
    await o.start();
    const { jobId } = await startJob(h.domain, { machineId, kind: "inspect" }, "test");
    await until("power cycle waits for its retry", () => stepNamed(jobId, "power_cycle").state === "pending" && cycles === 1);
    // The backoff (random 0: half of the 2 s base) passes on the controlled clock too, before the wake-up fires.
    clock += 1000;
    await until("power cycle retried", () => stepNamed(jobId, "power_cycle").state === "succeeded", 5000);
    expect(stepNamed(jobId, "power_cycle")).toMatchObject({ attempt: 2, error: null });
    await o.stop();
  });
});
