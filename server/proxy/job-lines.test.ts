/**
 * Lines Rackhand adds to a job's log (installer syslog, package proxy errors), on either database: found by the
 * machine's address, numbered after the job's last line, hostile text stored as sent (a NUL as U+2400), none added to
 * a job whose agent numbers its own lines.
 */
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollMachine } from "../machines/enroll";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { appendJobLines, runningJobByAddress, runningJobOf } from "./job-lines";

let h: Harness;
let machineId: number;
let jobId: number;
let stepId: number;
const IP = "10.77.0.5";

beforeAll(async () => {
  h = createHarness();
  ({ id: machineId } = await enrollMachine(h.domain, machineInput(1, { ip: IP }) as never, "test"));
  const { jobs, steps } = h.store.t;
  const [job] = await h.store.db.insert(jobs).values({ machineId, kind: "deploy_installer", state: "running", createdAt: new Date(), startedAt: new Date() }).returning({ id: jobs.id });
  jobId = job!.id;
  const [step] = await h.store.db.insert(steps).values({ jobId, group: 0, name: "wait_install", runner: "server", state: "running" }).returning({ id: steps.id });
  stepId = step!.id;
});
afterAll(() => h.close());

const lines = async (id: number) => {
  const { logLines } = h.store.t;
  return h.store.db.select().from(logLines).where(eq(logLines.jobId, id)).orderBy(asc(logLines.seq));
};

describe("job lines (either database)", () => {
  it("finds the running job by a NIC's address or the machine; nothing for another address", async () => {
    expect(await runningJobByAddress(h.domain, IP)).toEqual({ jobId, machineId, machineName: "node-001", kind: "deploy_installer" });
    expect(await runningJobOf(h.domain, machineId)).toEqual({ jobId, kind: "deploy_installer" });
    for (const other of ["10.77.0.6", "", "10.77.0.5' OR '1'='1", "10.77.0.5\n", "::1"]) expect(await runningJobByAddress(h.domain, other), JSON.stringify(other)).toBeNull();
  });

  it("numbers lines after the job's last, on its running step, and stores hostile text as sent (NUL as U+2400)", async () => {
    const hostile = ["a\nb", "cr\rlf", "nul\0byte", "back\\slash", `quotes ' "`, "$(reboot); rm -rf / & echo", "../../etc/passwd", "é漢字🙂", "x".repeat(8192)];
    const seen: unknown[] = [];
    const off = h.domain.bus.subscribe((e) => void (e.type === "log.lines" && seen.push(e)));
    const first = await appendJobLines(h.domain, jobId, machineId, hostile.slice(0, 4).map((text, i) => ({ ts: 1_000 + i, stream: "installer", text })));
    const second = await appendJobLines(h.domain, jobId, machineId, hostile.slice(4).map((text, i) => ({ ts: 2_000 + i, stream: "stderr", text })));
    off();
    expect([...first, ...second].map((l) => l.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const stored = await lines(jobId);
    expect(stored.map((l) => l.text)).toEqual(hostile.map((t) => t.replaceAll("\0", "\u2400")));
    expect(stored.every((l) => l.stepId === stepId)).toBe(true);
    expect(seen).toHaveLength(2);
    expect(await appendJobLines(h.domain, jobId, machineId, [])).toEqual([]);
  });

  it("adds nothing to a job whose agent numbers its own lines, nor to a job that does not exist", async () => {
    const { agentTokens, jobs } = h.store.t;
    const { id: other } = await enrollMachine(h.domain, machineInput(2) as never, "test");
    const [job] = await h.store.db.insert(jobs).values({ machineId: other, kind: "inspect", state: "running", createdAt: new Date() }).returning({ id: jobs.id });
    await h.store.db.insert(agentTokens).values({ jobId: job!.id, machineId: other, tokenHash: "f".repeat(64), createdAt: new Date() });
    expect(await appendJobLines(h.domain, job!.id, other, [{ ts: 1, stream: "stderr", text: "x" }])).toEqual([]);
    expect(await lines(job!.id)).toEqual([]);
    expect(await appendJobLines(h.domain, 999_999, machineId, [{ ts: 1, stream: "stderr", text: "x" }])).toEqual([]);
  });
});
