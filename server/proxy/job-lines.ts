/**
 * Lines Rackhand itself adds to a job's log (installer syslog, package proxy errors): the same log_lines rows,
 * job-wide sequence numbers and `log.lines` live event as the agent's lines, so the log pane shows, resumes and
 * searches them alike. A job whose agent holds a token numbers its own lines (routes.ts): server lines would
 * take its next seqs, so they are not added there (that agent reports its own download errors).
 */
import { and, eq, max } from "drizzle-orm";
import type { LogLineDto } from "../../lib/jobs";
import type { Domain } from "../context";
import { agentTokens, jobs, logLines, machines, nics, steps } from "../db/schema";

export interface JobOfAddress {
  jobId: number;
  machineId: number;
  machineName: string;
  kind: string;
}

/** The running job of the machine that has `ip` on one of its NICs. */
export function runningJobByAddress(d: Domain, ip: string): JobOfAddress | null {
  const r = d.db
    .select({ jobId: jobs.id, machineId: machines.id, machineName: machines.name, kind: jobs.kind })
    .from(nics)
    .innerJoin(machines, eq(machines.id, nics.machineId))
    .innerJoin(jobs, and(eq(jobs.machineId, machines.id), eq(jobs.state, "running")))
    .where(eq(nics.ip, ip))
    .get();
  return r ?? null;
}

/** The running job of a machine. */
export function runningJobOf(d: Domain, machineId: number): { jobId: number; kind: string } | null {
  return d.db.select({ jobId: jobs.id, kind: jobs.kind }).from(jobs).where(and(eq(jobs.machineId, machineId), eq(jobs.state, "running"))).get() ?? null;
}

/** Append lines to a job (seq after its last), attached to its running step; publishes them. [] when an agent owns the job's seqs. */
export function appendJobLines(d: Domain, jobId: number, machineId: number, lines: { ts: number; stream: string; text: string }[]): LogLineDto[] {
  if (!lines.length) return [];
  const taken = d.db.transaction((tx) => {
    if (tx.select({ id: agentTokens.id }).from(agentTokens).where(eq(agentTokens.jobId, jobId)).get()) return [];
    const step = tx.select({ id: steps.id }).from(steps).where(and(eq(steps.jobId, jobId), eq(steps.state, "running"))).get();
    let seq = (tx.select({ s: max(logLines.seq) }).from(logLines).where(eq(logLines.jobId, jobId)).get()?.s ?? -1) + 1;
    const out: LogLineDto[] = [];
    for (const l of lines) {
      const row = { jobId, stepId: step?.id ?? null, seq: seq++, ts: new Date(l.ts), stream: l.stream, text: l.text };
      tx.insert(logLines).values(row).run();
      out.push({ seq: row.seq, ts: l.ts, stream: l.stream, text: l.text, stepId: row.stepId });
    }
    return out;
  });
  if (taken.length) d.bus.publish({ type: "log.lines", jobId, machineId, lines: taken });
  return taken;
}
