/**
 * One job's whole record for a support ticket: the job and its steps, every log line (agent, installer, server),
 * the machine's events from the job's start to its end, and the machine's console transcript, merged on one time
 * axis, plus a plain-text rendering of that axis. Served by server/http/job-bundle.ts.
 *
 * Console lines are placed on the axis by the transcript's arrival index (server/oob/console/transcript.ts) and
 * linked to the step running when they arrived. The raw transcript (its last `consoleMaxBytes`) is included as
 * well: it also holds what was printed before the index existed, or while no job ran.
 */
import fs from "node:fs";
import { and, asc, eq, gte, lte } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { JobDto, LogLineDto } from "../../lib/jobs";
import type { TimelineEntry, TimelineSource } from "../../lib/job-timeline";
import type { Store } from "../db/store";
import { consoleLinesBetween, transcriptFiles } from "../oob/console/transcript";
import { listMachineJobs } from "./jobs";

export type { TimelineEntry, TimelineSource } from "../../lib/job-timeline";

export interface JobRecord {
  format: "rackhand-job-record/1";
  generatedAt: string;
  machine: { id: number; name: string };
  job: Omit<JobDto, "steps">;
  steps: JobDto["steps"];
  timeline: TimelineEntry[];
  console: { transcript: string; truncated: boolean; note: string };
  text: string;
}

/** Which timeline source a log line's stream belongs to. */
export function sourceOf(stream: string): TimelineSource {
  if (stream === "installer" || stream === "phase") return "installer";
  if (stream === "agent" || stream === "stdout" || stream === "stderr") return "agent";
  return "server";
}

function readTail(files: string[], maxBytes: number): { text: string; truncated: boolean } {
  const parts: Buffer[] = [];
  let size = 0;
  for (const f of [...files].reverse()) {
    const b = fs.readFileSync(f);
    parts.unshift(b);
    size += b.length;
    if (size >= maxBytes) break;
  }
  const all = Buffer.concat(parts);
  const truncated = all.length > maxBytes;
  return { text: (truncated ? all.subarray(all.length - maxBytes) : all).toString("utf8"), truncated };
}

const iso = (ms: number) => new Date(ms).toISOString();
/** One line of the text rendering: control characters shown escaped so a line stays a line. */
const oneLine = (s: string) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`).replace(/\n/g, "\\n");

/**
 * `forView`: for the job page, which shows the axis only: no text rendering and no raw transcript (both empty).
 * @throws AppError NOT_FOUND
 */
export async function jobRecord(store: Store, jobId: number, consoleDir: string, consoleMaxBytes = 1 << 20, now = Date.now(), forView = false): Promise<JobRecord> {
  const { events, jobs, logLines, machines } = store.t;
  const [jobRow] = await store.db.select({ machineId: jobs.machineId }).from(jobs).where(eq(jobs.id, jobId)).limit(1);
  if (!jobRow) throw new AppError("NOT_FOUND", `Job ${jobId} does not exist`);
  const machine = (await store.db.select({ id: machines.id, name: machines.name }).from(machines).where(eq(machines.id, jobRow.machineId)).limit(1))[0]!;
  // listMachineJobs builds the DTO the UI shows; take this job from the machine's list, or build it alone.
  const job = (await listMachineJobs(store, jobRow.machineId, 1000)).find((j) => j.id === jobId)!;
  const stepName = new Map(job.steps.map((s) => [s.id, s.name]));
  const to = job.finishedAt ?? now;
  const lines: LogLineDto[] = (
    await store.db
      .select({ seq: logLines.seq, ts: logLines.ts, stream: logLines.stream, text: logLines.text, stepId: logLines.stepId })
      .from(logLines)
      .where(eq(logLines.jobId, jobId))
      .orderBy(asc(logLines.seq))
  ).map((l) => ({ ...l, ts: l.ts.getTime() }));
  const evs = await store.db
    .select()
    .from(events)
    .where(and(eq(events.machineId, machine.id), gte(events.ts, new Date(job.createdAt)), lte(events.ts, new Date(to + 1000))))
    .orderBy(asc(events.id));
  // The step running at a moment: the latest-started step of the job that had started by then and not yet ended.
  const stepAt = (ts: number) => {
    const s = job.steps.filter((x) => x.startedAt != null && x.startedAt <= ts && (x.finishedAt == null || x.finishedAt >= ts)).sort((a, b) => b.startedAt! - a.startedAt!)[0];
    return s ? { stepId: s.id, stepName: s.name } : { stepId: null, stepName: null };
  };
  const timeline: TimelineEntry[] = [];
  for (const s of job.steps) {
    if (s.startedAt != null) timeline.push({ ts: s.startedAt, source: "step", stepId: s.id, stepName: s.name, text: `step ${s.name} started (attempt ${s.attempt}/${s.maxAttempts}, limit ${s.timeoutS} s)` });
    if (s.finishedAt != null) timeline.push({ ts: s.finishedAt, source: "step", stepId: s.id, stepName: s.name, text: `step ${s.name} ${s.state}${s.error ? `: ${s.error}` : ""}` });
  }
  for (const l of lines) {
    const at = l.stepId != null ? { stepId: l.stepId, stepName: stepName.get(l.stepId) ?? null } : stepAt(l.ts);
    timeline.push({ ts: l.ts, source: sourceOf(l.stream), ...at, text: l.stream === "stderr" ? `[stderr] ${l.text}` : l.text });
  }
  for (const e of evs) timeline.push({ ts: e.ts.getTime(), source: "event", ...stepAt(e.ts.getTime()), text: `${e.kind}: ${e.message} (${e.actor})` });
  for (const c of consoleLinesBetween(consoleDir, machine.id, job.createdAt, to)) timeline.push({ ts: c.ts, source: "console", ...stepAt(c.ts), text: c.text });
  // Stable: equal times keep steps, then lines in seq order, then events, then console lines.
  timeline.sort((a, b) => a.ts - b.ts);
  const consoleText = forView ? { text: "", truncated: false } : readTail(transcriptFiles(consoleDir, machine.id), consoleMaxBytes);
  const { steps: stepList, ...jobOnly } = job;
  const head = [
    `Rackhand job record: job #${job.id} (${job.kind}) on ${machine.name} (machine ${machine.id})`,
    `state ${job.state}${job.error ? `: ${job.error}` : ""}; created ${iso(job.createdAt)} by ${job.createdBy ?? "system"}; started ${job.startedAt ? iso(job.startedAt) : "-"}; finished ${job.finishedAt ? iso(job.finishedAt) : "-"}`,
    "",
    "Steps:",
    ...stepList.map((s) => `  [${s.group}] ${s.name} (${s.runner}) ${s.state} attempt ${s.attempt}/${s.maxAttempts}, limit ${s.timeoutS} s${s.startedAt ? `, ${iso(s.startedAt)}` : ""}${s.finishedAt ? ` → ${iso(s.finishedAt)}` : ""}${s.error ? `: ${oneLine(s.error)}` : ""}`),
    "",
    "Timeline (time, source, step, text):",
  ];
  const body = forView ? [] : timeline.map((t) => `${iso(t.ts)} ${t.source.padEnd(9)} ${(t.stepName ?? "-").padEnd(16)} ${oneLine(t.text)}`);
  const tail = ["", `Console transcript (raw${consoleText.truncated ? `; last ${consoleMaxBytes} bytes` : ""}):`, consoleText.text];
  return {
    format: "rackhand-job-record/1",
    generatedAt: iso(now),
    machine,
    job: jobOnly,
    steps: stepList,
    timeline,
    console: { transcript: consoleText.text, truncated: consoleText.truncated, note: "Console lines printed while the job ran are on the time axis (source console); this is the raw transcript." },
    text: forView ? "" : [...head, ...body, ...tail].join("\n"),
  };
}
