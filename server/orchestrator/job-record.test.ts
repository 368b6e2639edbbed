import fs from "node:fs";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobs, logLines, steps } from "../db/schema";
import { Transcript } from "../oob/console/transcript";
import { recordStoreEvent } from "../events/audit";
import { transition } from "../machines/lifecycle";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { startJob } from "./job-state";
import { jobRecord, sourceOf } from "./job-record";

describe("jobRecord", () => {
  let h: Harness;
  let jobId = 0;
  let machineId = 0;
  let consoleDir = "";
  const T = Date.now() - 60_000;
  beforeAll(async () => {
    h = createHarness();
    machineId = (await h.operator.machines.enroll(machineInput(1))).id;
    await transition(h.domain, machineId, "manage", { actor: "test" });
    jobId = (await startJob(h.domain, { machineId, kind: "inspect" }, "test")).jobId;
    const st = h.db.select().from(steps).where(eq(steps.jobId, jobId)).all();
    const [a, b] = [st[0]!, st[1] ?? st[0]!];
    h.db.update(steps).set({ state: "succeeded", startedAt: new Date(T), finishedAt: new Date(T + 10_000) }).where(eq(steps.id, a.id)).run();
    h.db.update(steps).set({ state: "running", startedAt: new Date(T + 10_000) }).where(eq(steps.id, b.id)).run();
    h.db
      .insert(logLines)
      .values([
        { jobId, stepId: a.id, seq: 0, ts: new Date(T + 1000), stream: "agent", text: "first agent line" },
        { jobId, stepId: null, seq: 1, ts: new Date(T + 12_000), stream: "installer", text: "installer says\u001b[31m hi\nsecond" },
        { jobId, stepId: b.id, seq: 2, ts: new Date(T + 13_000), stream: "stderr", text: "oops" },
      ])
      .run();
    await recordStoreEvent(h.store, h.store.db, { actor: "system", machineId, kind: "test.mark", message: "an event in the window" });
    consoleDir = path.join(h.dataDir, "consoles-test");
    fs.mkdirSync(consoleDir, { recursive: true });
    fs.writeFileSync(path.join(consoleDir, `${machineId}.log`), "console: booting\r\nconsole: login:");
  });
  afterAll(() => h.close());

  it("puts steps, log lines and events on one ordered time axis, each tied to its step", async () => {
    const r = await jobRecord(h.store, jobId, consoleDir);
    expect(r.format).toBe("rackhand-job-record/1");
    expect(r.machine.id).toBe(machineId);
    const ts = r.timeline.map((t) => t.ts);
    expect([...ts].sort((x, y) => x - y)).toEqual(ts);
    const first = r.steps[0]!;
    const second = r.steps[1] ?? first;
    expect(r.timeline.find((t) => t.text === "first agent line")).toMatchObject({ source: "agent", stepId: first.id });
    // A line without a step id is placed in the step running at its time.
    expect(r.timeline.find((t) => t.text.startsWith("installer says"))).toMatchObject({ source: "installer", stepId: second.id });
    expect(r.timeline.find((t) => t.source === "event" && t.text.includes("an event in the window"))).toBeTruthy();
    expect(r.timeline.filter((t) => t.source === "step").length).toBeGreaterThanOrEqual(2);
    expect(r.console.transcript).toContain("console: login:");
  });

  it("the text rendering keeps one entry per line (control characters escaped) and includes the console", async () => {
    const r = await jobRecord(h.store, jobId, consoleDir);
    const line = r.text.split("\n").find((l) => l.includes("installer says"))!;
    expect(line).toContain("\\x1b[31m hi\\nsecond");
    expect(r.text).toContain(`job #${jobId} (inspect)`);
    expect(r.text).toMatch(/Console transcript/);
    expect(r.text).toContain("console: login:");
  });

  it("keeps the last bytes of a large console transcript and says so; unknown job is NOT_FOUND", async () => {
    const r = await jobRecord(h.store, jobId, consoleDir, 10);
    expect(r.console.truncated).toBe(true);
    expect(r.console.transcript).toBe("ole: login:".slice(-10));
    await expect(jobRecord(h.store, 999_999, consoleDir)).rejects.toThrow(/does not exist/);
  });

  it("for the job page: the same axis without the text rendering and the raw transcript", async () => {
    const full = await jobRecord(h.store, jobId, consoleDir, 1 << 20, 1e15);
    const view = await jobRecord(h.store, jobId, consoleDir, 1 << 20, 1e15, true);
    expect(view.timeline).toEqual(full.timeline);
    expect(view.steps).toEqual(full.steps);
    expect(view.text).toBe("");
    expect(view.console.transcript).toBe("");
    expect(full.console.transcript).toContain("console: login:");
  });

  it("maps streams to sources", async () => {
    expect(["agent", "stdout", "stderr", "installer", "phase", "server", "proxy"].map(sourceOf)).toEqual(["agent", "agent", "agent", "installer", "installer", "server", "server"]);
  });
});

describe("jobRecord console lines", () => {
  it("places console lines on the axis by their arrival and links each to the step running then", async () => {
    const h = createHarness();
    try {
      const machineId = (await h.operator.machines.enroll(machineInput(2))).id;
      await transition(h.domain, machineId, "manage", { actor: "test" });
      const jobId = (await startJob(h.domain, { machineId, kind: "inspect" }, "test")).jobId;
      const C = h.db.select().from(jobs).where(eq(jobs.id, jobId)).get()!.createdAt.getTime();
      const st = h.db.select().from(steps).where(eq(steps.jobId, jobId)).all();
      const [a, b] = [st[0]!, st[1]!];
      h.db.update(steps).set({ state: "succeeded", startedAt: new Date(C + 1000), finishedAt: new Date(C + 5000) }).where(eq(steps.id, a.id)).run();
      h.db.update(steps).set({ state: "running", startedAt: new Date(C + 5000) }).where(eq(steps.id, b.id)).run();
      const dir = path.join(h.dataDir, "consoles-timed");
      const t = new Transcript(dir, machineId, 1 << 20, 2);
      t.append("before the job\r\n", C - 5000);
      t.append("in the first step\r\n", C + 2000);
      t.append("\x1b[32min the sec", C + 6000);
      t.append("ond step\x1b[0m\r\n", C + 7000);
      const r = await jobRecord(h.store, jobId, dir, 1 << 20, C + 60_000);
      const con = r.timeline.filter((e) => e.source === "console");
      expect(con).toEqual([
        { ts: C + 2000, source: "console", stepId: a.id, stepName: a.name, text: "in the first step" },
        { ts: C + 6000, source: "console", stepId: b.id, stepName: b.name, text: "in the second step" },
      ]);
      const ts = r.timeline.map((e) => e.ts);
      expect([...ts].sort((x, y) => x - y)).toEqual(ts);
      expect(r.text).toMatch(/console\s+\S+\s+in the first step/);
      // The raw transcript still has everything, the line from before the job too.
      expect(r.console.transcript).toContain("before the job");
    } finally {
      h.close();
    }
  });
});
