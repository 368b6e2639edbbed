import { networkParams } from "./network-files";
import { and, asc, desc, eq, gt, inArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { ACTIVE_JOB_STATES, movesLifecycle, type JobDto, type JobKind, type LogLineDto, type StepDto } from "../../lib/jobs";
import type { LifecycleAction } from "../../lib/lifecycle";
import type { LiveEvent } from "../../lib/live-events";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { agentTokens, jobs, logLines, machines, osProfiles, steps, type OsProfile } from "../db/schema";
import { profileOptionsSchema, type NetbootSettings, type RaidSpec } from "../../lib/netboot";
import { recordEvent } from "../events/audit";
import { applyTransition } from "../machines/lifecycle";
import { JOB_KIND_SPECS, resolveParams } from "./kinds";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** The lifecycle action that starts a job of each kind (power jobs move no lifecycle state). */
const START_ACTION: Record<JobKind, LifecycleAction | null> = {
  inspect: "inspect",
  clean: "release",
  deploy_image: "deploy",
  deploy_installer: "deploy",
  reinstall: "reinstall",
  power_on: null,
  power_off: null,
  power_cycle: null,
};

export interface StartJobInput {
  machineId: number;
  kind: JobKind;
  params?: Record<string, unknown>;
  batchId?: number | null;
  /** Queued jobs wait for their batch to give them a slot; the state change happens when they start. */
  queued?: boolean;
  /** Use "retry" to restart a failed job's kind from *_failed. */
  action?: LifecycleAction;
}

/**
 * Start a job on a machine: the lifecycle transition, the job and all its steps in one transaction.
 * @throws AppError MACHINE_BUSY (another active job), INVALID_TRANSITION, MACHINE_NOT_FOUND
 */
export function startJob(d: Domain, input: StartJobInput, actor: Actor): { jobId: number } {
  const live: LiveEvent[] = [];
  const jobId = d.db.transaction((tx) => {
    const active = tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(eq(jobs.machineId, input.machineId), inArray(jobs.state, [...ACTIVE_JOB_STATES])))
      .get();
    if (active) throw new AppError("MACHINE_BUSY", `Machine ${input.machineId} already runs job ${active.id}`);
    const now = new Date();
    const action = input.action ?? START_ACTION[input.kind];
    if (!input.queued && action) live.push(...applyTransition(tx, input.machineId, action, { actor }).live);
    const job = tx
      .insert(jobs)
      .values({
        machineId: input.machineId,
        batchId: input.batchId ?? null,
        kind: input.kind,
        state: input.queued ? "queued" : "running",
        params: input.params ?? {},
        createdBy: actor,
        createdAt: now,
        startedAt: input.queued ? null : now,
      })
      .returning()
      .get();
    insertSteps(tx, job.id, input.kind, input.params ?? {});
    const ev = recordEvent(tx, {
      actor,
      machineId: input.machineId,
      kind: "job.started",
      message: `Job ${job.id} (${input.kind}) ${input.queued ? "queued" : "started"}`,
      payload: { jobId: job.id, kind: input.kind },
    });
    live.push(
      { type: "job.changed", jobId: job.id, machineId: input.machineId, batchId: job.batchId, state: job.state as JobDto["state"] },
      { type: "event.created", event: ev },
    );
    return job.id;
  });
  for (const e of live) d.bus.publish(e);
  return { jobId };
}

/** Insert a job's steps from its kind's spec (inside the caller's transaction). */
export function insertSteps(tx: Tx, jobId: number, kind: JobKind, params: Record<string, unknown>): void {
  const rows = stepRows(jobId, kind, params);
  if (rows.length) tx.insert(steps).values(rows).run();
}

/** Backoff of a step whose spec names none (as the steps table's column defaults). */
const DEFAULT_BACKOFF = { baseMs: 2000, maxMs: 60_000 };

/** The step rows of a job from its kind's spec (every column given: batches insert them with one prepared statement). */
export function stepRows(jobId: number, kind: JobKind, params: Record<string, unknown>) {
  // Steps whose `when` param is unset are left out; a group left empty goes with them (groups are renumbered).
  const groups = JOB_KIND_SPECS[kind].map((group) => group.filter((s) => !s.when || params[s.when] != null)).filter((group) => group.length > 0);
  return groups.flatMap((group, g) =>
    group.map((s) => ({
      jobId,
      group: g,
      name: s.name,
      runner: s.runner,
      params: resolveParams(s.params, params),
      state: "pending",
      maxAttempts: s.maxAttempts,
      timeoutS: s.timeoutS,
      backoffBaseMs: s.backoffBaseMs ?? DEFAULT_BACKOFF.baseMs,
      backoffMaxMs: s.backoffMaxMs ?? DEFAULT_BACKOFF.maxMs,
    })),
  );
}

/**
 * Job params for a deploy from the machine's OS profile. @throws AppError VALIDATION when it has none.
 */
export function deployParams(db: Db, machineId: number): { kind: JobKind; params: Record<string, unknown> } {
  const row = db
    .select({ p: osProfiles })
    .from(machines)
    .leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId))
    .where(eq(machines.id, machineId))
    .get();
  if (!row) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  return deployParamsFor(db, machineId, row.p);
}

/** The job a reinstall runs: an image profile cleans and deploys in one job; an installer reinstalls by installing. */
export function reinstallKind(deployKind: JobKind): JobKind {
  return deployKind === "deploy_image" ? "reinstall" : deployKind;
}

/**
 * deployParams with the machine's profile (and the netboot settings) already read: a batch reads them once for all
 * its machines. @throws AppError VALIDATION
 */
export function deployParamsFor(
  db: Db,
  machineId: number,
  p: OsProfile | null,
  settings?: NetbootSettings,
): { kind: JobKind; params: Record<string, unknown> } {
  if (!p) throw new AppError("VALIDATION", "Choose an OS profile for the machine before deploying it");
  if (p.kind === "installer") return { kind: "deploy_installer", params: { osProfileId: p.id, osFamily: p.osFamily } };
  if (!p.imageUrl) throw new AppError("VALIDATION", `OS profile ${p.name} has no image URL`);
  return {
    kind: "deploy_image",
    params: {
      osProfileId: p.id,
      imageUrl: p.imageUrl,
      imageSha256: p.imageSha256,
      imageFormat: p.imageFormat ?? "raw",
      osFamily: p.osFamily,
      wipeMode: "signatures",
      targetDisk: null,
      ...raidParams(p),
      ...scriptParams(p),
      ...networkParams(db, machineId, p, settings),
    },
  };
}

/** With RAID in the profile: the array to create, and the image goes onto it instead of the first disk. */
function raidParams(p: OsProfile): { raid: RaidSpec | null; imageTarget: string | null } {
  const raid = profileOptionsSchema.parse(p.options ?? {}).raid ?? null;
  return { raid, imageTarget: raid ? `/dev/md/${raid.name}` : null };
}

/** With a post-install script in the profile: what the run_script step runs. */
function scriptParams(p: OsProfile): { scriptText: string | null; scriptInterpreter: string | null; scriptTimeoutS: number | null } {
  const s = profileOptionsSchema.parse(p.options ?? {}).postInstallScript ?? null;
  return { scriptText: s?.script ?? null, scriptInterpreter: s?.interpreter ?? null, scriptTimeoutS: s?.timeoutS ?? null };
}

/**
 * Cancel a machine's active job. Steps that have not finished are cancelled; nothing is powered off by surprise
 * (a running agent is told to stop at its next heartbeat). The machine goes to *_failed via "abort" (not for a power
 * job, which never moved it).
 */
export function cancelJob(d: Domain, jobId: number, actor: Actor, reason = "cancelled by operator"): void {
  const live: LiveEvent[] = [];
  d.db.transaction((tx) => {
    const job = tx.select().from(jobs).where(eq(jobs.id, jobId)).get();
    if (!job) throw new AppError("NOT_FOUND", `Job ${jobId} does not exist`);
    if (!ACTIVE_JOB_STATES.includes(job.state as JobDto["state"])) {
      throw new AppError("CONFLICT", `Job ${jobId} is already ${job.state}`);
    }
    const now = new Date();
    tx.update(jobs).set({ state: "cancelled", error: reason, finishedAt: now }).where(eq(jobs.id, jobId)).run();
    tx.update(steps)
      .set({ state: "cancelled", finishedAt: now, leaseExpiresAt: null })
      .where(and(eq(steps.jobId, jobId), inArray(steps.state, ["pending", "ready", "running"])))
      .run();
    // The agent's token ends with its job: later calls get 401 (a long-poll already waiting answers "done").
    tx.update(agentTokens).set({ revokedAt: now }).where(eq(agentTokens.jobId, jobId)).run();
    if (job.state === "running" && movesLifecycle(job.kind as JobKind)) live.push(...applyTransition(tx, job.machineId, "abort", { actor, reason }).live);
    const ev = recordEvent(tx, { actor, machineId: job.machineId, kind: "job.cancelled", message: `Job ${jobId} cancelled: ${reason}`, payload: { jobId } });
    live.push({ type: "job.changed", jobId, machineId: job.machineId, batchId: job.batchId, state: "cancelled" }, { type: "event.created", event: ev });
  });
  for (const e of live) d.bus.publish(e);
}

/** The active (queued or running) job of a machine, if any: one per machine. */
export function activeJob(db: Db, machineId: number): { id: number; kind: string; state: string } | null {
  return (
    db
      .select({ id: jobs.id, kind: jobs.kind, state: jobs.state })
      .from(jobs)
      .where(and(eq(jobs.machineId, machineId), inArray(jobs.state, [...ACTIVE_JOB_STATES])))
      .get() ?? null
  );
}

const ms = (d: Date | null) => d?.getTime() ?? null;

function stepDto(s: typeof steps.$inferSelect): StepDto {
  return {
    id: s.id,
    group: s.group,
    name: s.name,
    runner: s.runner,
    state: s.state as StepDto["state"],
    attempt: s.attempt,
    maxAttempts: s.maxAttempts,
    timeoutS: s.timeoutS,
    error: s.error,
    startedAt: ms(s.startedAt),
    finishedAt: ms(s.finishedAt),
    nextAttemptAt: ms(s.nextAttemptAt),
  };
}

/** A machine's jobs, newest first, with their steps (the timeline). */
export function listMachineJobs(db: Db, machineId: number, limit = 20): JobDto[] {
  const rows = db.select().from(jobs).where(eq(jobs.machineId, machineId)).orderBy(desc(jobs.id)).limit(limit).all();
  if (!rows.length) return [];
  const stepRows = db
    .select()
    .from(steps)
    .where(inArray(steps.jobId, rows.map((j) => j.id)))
    .orderBy(asc(steps.group), asc(steps.id))
    .all();
  return rows.map((j) => ({
    id: j.id,
    machineId: j.machineId,
    batchId: j.batchId,
    kind: j.kind as JobKind,
    state: j.state as JobDto["state"],
    error: j.error,
    createdBy: j.createdBy,
    createdAt: j.createdAt.getTime(),
    startedAt: ms(j.startedAt),
    finishedAt: ms(j.finishedAt),
    steps: stepRows.filter((s) => s.jobId === j.id).map(stepDto),
  }));
}

/** Log lines of a job after `afterSeq` (backfill; clients resume from their last seq). */
export function jobLogs(db: Db, jobId: number, afterSeq: number, limit: number): LogLineDto[] {
  return db
    .select({ seq: logLines.seq, ts: logLines.ts, stream: logLines.stream, text: logLines.text, stepId: logLines.stepId })
    .from(logLines)
    .where(and(eq(logLines.jobId, jobId), gt(logLines.seq, afterSeq)))
    .orderBy(asc(logLines.seq))
    .limit(limit)
    .all()
    .map((l) => ({ ...l, ts: l.ts.getTime() }));
}
