import type { LiveEvent } from "../../lib/live-events";
import type { StoreTx } from "../db/store";
import { jsonText, type HotQueries, type JobRow, type StepRow } from "./orchestrator-queries";
import { PASSIVE, stepChanged, waitSatisfied } from "./step-kinds";

/** What an advance does after its commit (Orchestrator.afterAdvance). */
export interface AdvanceOut {
  live: LiveEvent[];
  toRun: { step: StepRow; machineId: number }[];
  /** Agent steps were made ready: wake the job's long-poll. */
  readied: boolean;
  /** PostgreSQL: server steps were made ready, to be claimed. */
  serverReady: boolean;
}
export const advanceOut = (): AdvanceOut => ({ live: [], toRun: [], readied: false, serverReady: false });

/** What advanceJob needs of the engine. */
export interface AdvanceEngine {
  queries: HotQueries;
  pg: boolean;
  /** Close the job (error null = success); its live events. */
  finish(tx: StoreTx, job: JobRow, error: string | null): Promise<LiveEvent[]>;
}

/**
 * The advance of a running job whose row this transaction has locked (Orchestrator.advance, or its complete on
 * PostgreSQL), its effects collected in `out` for after the commit (Orchestrator.afterAdvance).
 * The steps are read in a statement of their own, after the lock: under READ COMMITTED a statement that waited for
 * the job's lock re-reads only the locked row, and rows it joined (the steps) would be those of its snapshot from
 * before the wait: steps another advance had readied and run since would look pending, and run twice (seen in
 * step-leases.test.ts). `steps`: the job's steps as the caller read them under this lock (read here when not given).
 */
export async function advanceJob(e: AdvanceEngine, tx: StoreTx, job: JobRow, now: number, out: AdvanceOut, steps?: StepRow[]): Promise<void> {
  const q = e.queries;
  const at = q.at(now);
  const { live } = out;
  for (;;) {
    const all = steps ?? (await q.stepsOfJob(tx, { id: job.id }));
    steps = undefined;
    const open = all.filter((s) => s.state !== "succeeded");
    if (open.length === 0) return void live.push(...(await e.finish(tx, job, null)));
    const group = open[0]!.group;
    const current = all.filter((s) => s.group === group);
    const failed = current.find((s) => s.state === "failed");
    if (failed) return void live.push(...(await e.finish(tx, job, `${failed.name}: ${failed.error ?? "failed"}`)));
    const satisfied = new Set<number>();
    for (const s of current) {
      if (s.state !== "pending" || (s.nextAttemptAt && s.nextAttemptAt.getTime() > now)) continue;
      const passive = PASSIVE.has(s.name);
      if (s.runner === "agent" || (e.pg && !passive)) {
        // Agent steps wait for the agent's long-poll; on PostgreSQL server steps wait for a process's claim.
        await q.readyStep(tx, { id: s.id });
        if (s.runner === "agent") out.readied = true;
        else out.serverReady = true;
        live.push(stepChanged(job, s, "ready"));
        continue;
      }
      const claimed = await q.claimStep(tx, { id: s.id, attempt: s.attempt + 1, at, lease: q.at(now + s.timeoutS * 1000) });
      const result = passive ? waitSatisfied(job, s.name) : null;
      if (result) {
        await q.succeedStep(tx, { id: s.id, at, result: jsonText(result) });
        live.push(stepChanged(job, claimed, "succeeded"));
        satisfied.add(s.id);
      } else {
        live.push(stepChanged(job, claimed, "running"));
        if (!passive) out.toRun.push({ step: claimed, machineId: job.machineId });
      }
    }
    // Go on to the next group only when this pass finished the current one by itself (passive steps satisfied).
    if (!satisfied.size || !current.every((s) => s.state === "succeeded" || satisfied.has(s.id))) return;
  }
}
