/**
 * Lines Rackhand itself adds to a job's log (installer syslog, package proxy errors): the same log_lines rows,
 * job-wide sequence numbers and `log.lines` live event as the agent's lines, so the log pane shows, resumes and
 * searches them alike. A job whose agent holds a token numbers its own lines (routes.ts): server lines would
 * take its next seqs, so they are not added there (that agent reports its own download errors). Through the Store.
 */
import { and, eq, max } from "drizzle-orm";
import type { LogLineDto } from "../../lib/jobs";
import type { Domain } from "../context";
import { forUpdate } from "../db/sql";
import { storeOf } from "../db/store";
import { storedText } from "../events/audit";

export interface JobOfAddress {
  jobId: number;
  machineId: number;
  machineName: string;
  kind: string;
}

/** The running job of the machine that has `ip` on one of its NICs. */
export async function runningJobByAddress(d: Domain, ip: string): Promise<JobOfAddress | null> {
  const { db, t } = storeOf(d);
  const { jobs, machines, nics } = t;
  const [r] = await db
    .select({ jobId: jobs.id, machineId: machines.id, machineName: machines.name, kind: jobs.kind })
    .from(nics)
    .innerJoin(machines, eq(machines.id, nics.machineId))
    .innerJoin(jobs, and(eq(jobs.machineId, machines.id), eq(jobs.state, "running")))
    .where(eq(nics.ip, ip))
    .limit(1);
  return r ?? null;
}

/** The running job of a machine. */
export async function runningJobOf(d: Domain, machineId: number): Promise<{ jobId: number; kind: string } | null> {
  const { db, t } = storeOf(d);
  const { jobs } = t;
  const [r] = await db
    .select({ jobId: jobs.id, kind: jobs.kind })
    .from(jobs)
    .where(and(eq(jobs.machineId, machineId), eq(jobs.state, "running")))
    .limit(1);
  return r ?? null;
}

/**
 * Append lines to a job (seq after its last), attached to its running step; publishes them. [] when an agent owns the
 * job's seqs or the job is gone. The job's row is locked first on PostgreSQL, so two processes appending to one job
 * (the syslog receiver on one, the package proxy on another) take turns and never pick the same seq. A NUL in a line
 * is stored as U+2400, as agent lines are.
 */
export async function appendJobLines(d: Domain, jobId: number, machineId: number, lines: { ts: number; stream: string; text: string }[]): Promise<LogLineDto[]> {
  if (!lines.length) return [];
  const store = storeOf(d);
  const { agentTokens, jobs, logLines, steps } = store.t;
  const taken = await store.transaction(async (tx) => {
    const [job] = await forUpdate(store.dialect, tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId)));
    if (!job) return [];
    if ((await tx.select({ id: agentTokens.id }).from(agentTokens).where(eq(agentTokens.jobId, jobId)).limit(1)).length) return [];
    const [step] = await tx
      .select({ id: steps.id })
      .from(steps)
      .where(and(eq(steps.jobId, jobId), eq(steps.state, "running")))
      .limit(1);
    const [last] = await tx.select({ s: max(logLines.seq) }).from(logLines).where(eq(logLines.jobId, jobId));
    let seq = (last?.s ?? -1) + 1;
    const out: LogLineDto[] = [];
    const rows = lines.map((l) => {
      const row = { jobId, stepId: step?.id ?? null, seq: seq++, ts: new Date(l.ts), stream: storedText(l.stream), text: storedText(l.text) };
      out.push({ seq: row.seq, ts: l.ts, stream: row.stream, text: row.text, stepId: row.stepId });
      return row;
    });
    await tx.insert(logLines).values(rows);
    return out;
  });
  if (taken.length) d.bus.publish({ type: "log.lines", jobId, machineId, lines: taken });
  return taken;
}
