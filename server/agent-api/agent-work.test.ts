import { asc, eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { logsRequest, type AgentLogLine } from "../../lib/agent-protocol";
import type { LogLineDto } from "../../lib/jobs";
import { machineInput } from "../testing/fixtures";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { cancelJob, startJob } from "../orchestrator/job-state";
import { Orchestrator } from "../orchestrator/orchestrator";
import type { MachinePorts } from "../orchestrator/ports";
import { AgentApiError, createAgentWork } from "./agent-work";
import { issueToken } from "./tokens";

/**
 * The agent API's token and log paths on the Store, on both databases (the `postgres` vitest project runs this file
 * again). A power job stands in for an agent's job: agent jobs move the machine's lifecycle, which server/machines
 * (not on the Store yet) writes; the log path does not care which step the lines belong to.
 */
let h: Harness;
let jobId: number;
let stepId: number;
let token: string;
let work: ReturnType<typeof createAgentWork>;
let orchestrator: Orchestrator;
/** The token's job and the step, as the log route has them before it reads the body. */
const authed = () => work.authenticateStep(token, stepId);
const ingest = async (batch: AgentLogLine[]) => {
  const { job, step } = await authed();
  return work.ingestLogs(job, step, batch);
};
const idle: MachinePorts = { setBootTarget: async () => {}, setBootDevice: async () => {}, powerOn: async () => {}, powerCycle: async () => {}, powerOff: async () => {} };

beforeEach(async () => {
  h = createHarness();
  const { id: machineId } = await h.operator.machines.enroll(machineInput(1));
  ({ jobId } = await startJob(h.domain, { machineId, kind: "power_cycle" }, "test"));
  const { db, t } = h.store;
  stepId = (await db.select({ id: t.steps.id }).from(t.steps).where(eq(t.steps.jobId, jobId)))[0]!.id;
  token = await h.store.transaction((tx) => issueToken(h.store, tx, jobId, machineId));
  // Not started: the log path only publishes through it.
  orchestrator = new Orchestrator(h.domain, idle);
  work = createAgentWork(h.domain, orchestrator);
});
afterEach(() => h.close());

const lines = (from: number, n: number, text = (s: number) => `line ${s}`): AgentLogLine[] =>
  Array.from({ length: n }, (_, i) => ({ seq: from + i, ts: 1_700_000_000_000 + from + i, stream: "stdout" as const, text: text(from + i) }));

async function stored() {
  const { db, t } = h.store;
  return db.select().from(t.logLines).where(eq(t.logLines.jobId, jobId)).orderBy(asc(t.logLines.seq));
}

describe(`agent tokens and log lines on ${testStoreKind()}`, () => {
  it("a token authenticates its job only; a wrong or over-long one is refused", async () => {
    expect(await work.authenticate(token)).toMatchObject({ jobId, state: "running" });
    for (const bad of [undefined, "", "x", token.slice(1), "a".repeat(101), `${token}'; DROP TABLE jobs; --`]) {
      await expect(work.authenticate(bad)).rejects.toBeInstanceOf(AgentApiError);
    }
  });

  it("stores concurrent batches and resends once each: contiguous seqs, each line published once", async () => {
    const batches = [lines(0, 400), lines(400, 400), lines(800, 400)];
    // The three at once, then a resend of the middle one and an overlapping batch (the agent retried after a timeout).
    const first = await Promise.all(batches.map((b) => ingest(b)));
    expect(first.map((r) => r.accepted)).toEqual([400, 400, 400]);
    expect(await ingest(batches[1]!)).toEqual({ accepted: 0 });
    expect(await ingest(lines(1100, 200))).toEqual({ accepted: 100 });
    const rows = await stored();
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 1300 }, (_, i) => i));
    expect(rows.every((r) => r.stepId === stepId && r.text === `line ${r.seq}`)).toBe(true);
    const published = h.published.flatMap<LogLineDto>((e) => (e.type === "log.lines" && e.jobId === jobId ? e.lines : []));
    expect(published.map((l) => l.seq).sort((a, b) => a - b)).toEqual(rows.map((r) => r.seq));
  });

  it("a 1,000-line batch is stored whole, in order, with its times and streams; a retry of it stores nothing", async () => {
    const streams = ["stdout", "stderr", "agent", "phase"] as const;
    const batch = lines(0, 1000).map((l, i) => ({ ...l, stream: streams[i % 4]! }));
    expect(await ingest(batch)).toEqual({ accepted: 1000 });
    expect(await ingest(batch)).toEqual({ accepted: 0 });
    const rows = await stored();
    expect(rows.map((r) => ({ seq: r.seq, ts: r.ts.getTime(), stream: r.stream, text: r.text }))).toEqual(batch);
    const published = h.published.flatMap<LogLineDto>((e) => (e.type === "log.lines" ? e.lines : []));
    expect(published).toEqual(batch.map((l) => ({ ...l, stepId })));
  });

  it("batches racing over the same seqs store each line once, and each line is accepted by one of them", async () => {
    // Overlapping ranges, one sent in reverse order: no deadlock, no line twice, no gap.
    const racing = [lines(0, 600), lines(300, 600).reverse(), lines(0, 900), lines(450, 450)];
    const accepted = (await Promise.all(racing.map((b) => ingest(b)))).reduce((a, r) => a + r.accepted, 0);
    expect(accepted).toBe(900);
    expect((await stored()).map((r) => r.seq)).toEqual(Array.from({ length: 900 }, (_, i) => i));
    const published = h.published.flatMap<LogLineDto>((e) => (e.type === "log.lines" ? e.lines : []));
    expect(published.map((l) => l.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 900 }, (_, i) => i));
  });

  it("of two lines with one seq in a batch, the first is stored and published (both databases)", async () => {
    const batch = [...lines(0, 2), { seq: 1, ts: 5, stream: "stderr" as const, text: "second copy of 1" }, ...lines(2, 1)];
    expect(await ingest(batch)).toEqual({ accepted: 3 });
    expect((await stored()).map((r) => r.text)).toEqual(["line 0", "line 1", "line 2"]);
    const published = h.published.flatMap<LogLineDto>((e) => (e.type === "log.lines" ? e.lines : []));
    expect(published.map((l) => l.text).sort()).toEqual(["line 0", "line 1", "line 2"]);
  });

  it("keeps hostile text as sent, in its own row", async () => {
    const hostile = [
      "a\nb\r\nc",
      "back\\slash \\\\ \\\"",
      `quote ' and "`,
      "$(rm -rf /); echo `id` & |",
      "'); DELETE FROM log_lines; --",
      "ünïcødé ✓ 日本 🚀",
      "x".repeat(8192),
      "NULL",
      "",
      "  spaces kept  \t",
      '{"a","b"},{}',
      "\u0001\u001b[31mred\u001b[0m\u007f",
    ];
    expect(await ingest(lines(0, hostile.length, (s) => hostile[s]!))).toEqual({ accepted: hostile.length });
    expect((await stored()).map((r) => r.text)).toEqual(hostile);
  });

  it("the protocol's limits hold before the store: a line over 8,192 characters, over 2,000 lines, no line", () => {
    expect(logsRequest.safeParse({ lines: lines(0, 1, () => "x".repeat(8193)) }).success).toBe(false);
    expect(logsRequest.safeParse({ lines: lines(0, 2001) }).success).toBe(false);
    expect(logsRequest.safeParse({ lines: [] }).success).toBe(false);
    expect(logsRequest.safeParse({ lines: lines(0, 2000, () => "x".repeat(8192)) }).success).toBe(true);
  });

  it("stores a NUL (binary output) as U+2400 on both databases, the rest of the line kept", async () => {
    expect(await ingest(lines(0, 2, (s) => (s === 0 ? "nul\0byte\0" : "after")))).toEqual({ accepted: 2 });
    expect((await stored()).map((r) => r.text)).toEqual(["nul\u2400byte\u2400", "after"]);
    const published = h.published.flatMap<LogLineDto>((e) => (e.type === "log.lines" ? e.lines : []));
    expect(published.map((l) => l.text)).toEqual(["nul\u2400byte\u2400", "after"]);
  });

  it("a closed job's token is revoked: further lines are refused", async () => {
    await cancelJob(h.domain, jobId, "test");
    await expect(work.authenticate(token)).rejects.toBeInstanceOf(AgentApiError);
    await expect(work.authenticateStep(token, stepId)).rejects.toThrow(/revoked agent token/);
    await expect(work.authenticateHeartbeat(token)).rejects.toThrow(/revoked agent token/);
  });

  it("another job's token is no credential for this step", async () => {
    const { id: other } = await h.operator.machines.enroll(machineInput(2));
    const { jobId: otherJob } = await startJob(h.domain, { machineId: other, kind: "power_cycle" }, "test");
    const otherToken = await h.store.transaction((tx) => issueToken(h.store, tx, otherJob, other));
    await expect(work.authenticateStep(otherToken, stepId)).rejects.toThrow(/does not belong to step/);
    // Its own step is fine; a step that does not exist is refused the same way.
    const ownStep = (await h.store.db.select({ id: h.store.t.steps.id }).from(h.store.t.steps).where(eq(h.store.t.steps.jobId, otherJob)))[0]!.id;
    expect((await work.authenticateStep(otherToken, ownStep)).step.id).toBe(ownStep);
    await expect(work.authenticateStep(otherToken, 2 ** 31 - 1)).rejects.toThrow(/does not belong to step/);
    // A step read with one job is refused for another's.
    const { job } = await work.authenticateStep(otherToken, ownStep);
    const { step } = await authed();
    await expect(work.ingestLogs(job, step, lines(0, 1))).rejects.toBeInstanceOf(AgentApiError);
    expect(await stored()).toEqual([]);
  });

  it("hands a step whose claim's answer was lost out again, to an agent that says it does not run it", async () => {
    const { db, t } = h.store;
    // The job's step as an agent step made ready by the engine.
    await db.update(t.steps).set({ runner: "agent", name: "wipe", state: "ready" }).where(eq(t.steps.id, stepId));
    const job = await work.authenticate(token);
    // The claim commits, and its answer never reaches the agent (the process dies, the connection is cut).
    const first = await work.heartbeat(job, 0, () => false, token, []);
    expect(first.steps.map((s) => s.id)).toEqual([stepId]);
    const attempt = first.steps[0]!.attempt;
    // An older agent (no `running`): nothing is handed out twice.
    expect((await work.heartbeat(job, 0, () => false, token)).steps).toEqual([]);
    // The agent runs it: not again.
    expect((await work.heartbeat(job, 0, () => false, token, [stepId])).steps).toEqual([]);
    // The agent does not run it: the same step, the same attempt (its result is taken as the lease's).
    const again = await work.heartbeat(job, 0, () => false, token, [stepId + 1000]);
    expect(again.steps).toEqual([expect.objectContaining({ id: stepId, name: "wipe", attempt })]);
    // The route's way: the running steps read with the token, in one statement.
    const hb = await work.authenticateHeartbeat(token);
    expect(hb.leased.map((s) => s.id)).toEqual([stepId]);
    expect((await work.heartbeat(hb.job, 0, () => false, token, [stepId], hb.leased)).steps).toEqual([]);
    const viaRoute = await work.heartbeat(hb.job, 0, () => false, token, [], hb.leased);
    expect(viaRoute.steps).toEqual([expect.objectContaining({ id: stepId, name: "wipe", attempt })]);
    expect((await db.select({ state: t.steps.state, attempt: t.steps.attempt }).from(t.steps).where(eq(t.steps.id, stepId)))[0]).toEqual({ state: "running", attempt });
  });

  describe("a heartbeat that waited for work", () => {
    /** The job's step as a pending agent step; a heartbeat starts waiting; `meanwhile` runs; the poll is woken. */
    async function waitedPoll(meanwhile: () => Promise<void>) {
      const { db, t } = h.store;
      await db.update(t.steps).set({ runner: "agent", name: "wipe", state: "pending" }).where(eq(t.steps.id, stepId));
      const job = await work.authenticate(token);
      const poll = work.heartbeat(job, 5, () => false, token, []);
      await new Promise((r) => setTimeout(r, 50));
      await meanwhile();
      orchestrator.wake(jobId);
      return poll;
    }
    const makeReady = async () => void (await h.store.db.update(h.store.t.steps).set({ state: "ready" }).where(eq(h.store.t.steps.id, stepId)));
    const stepState = async () => (await h.store.db.select({ state: h.store.t.steps.state }).from(h.store.t.steps).where(eq(h.store.t.steps.id, stepId)))[0]!.state;

    it("claims the step made ready meanwhile", async () => {
      const r = await waitedPoll(makeReady);
      expect(r.steps.map((s) => s.id)).toEqual([stepId]);
      expect(await stepState()).toBe("running");
    });

    it("claims nothing and answers 401 when a new lookup replaced its token meanwhile", async () => {
      const { machineId } = await work.authenticate(token);
      const poll = waitedPoll(async () => {
        await makeReady();
        await h.store.transaction(async (tx) => void (await issueToken(h.store, tx, jobId, machineId)));
      });
      await expect(poll).rejects.toThrow(/revoked agent token/);
      expect(await stepState()).toBe("ready");
    });

    it("says done when the job ended meanwhile", async () => {
      const r = await waitedPoll(() => cancelJob(h.domain, jobId, "test"));
      expect(r).toEqual({ done: true, jobState: "cancelled", steps: [] });
    });
  });
});
