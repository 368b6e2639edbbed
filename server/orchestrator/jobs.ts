/**
 * Job planning (deploy params from the OS profile) and reads (timeline, logs). Job state: job-state.ts.
 * The reads are on the Store; planning reads machines, OS profiles and netboot settings synchronously on SQLite
 * (those modules are not on the Store yet).
 */
import { and, asc, desc, eq, gt, inArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { JobDto, JobKind, LogLineDto, StepDto } from "../../lib/jobs";
import type { Db } from "../db/client";
import { machines, osProfiles, type OsProfile } from "../db/schema";
import type { Store, Tables } from "../db/store";
import { profileOptionsSchema, type NetbootSettings, type RaidSpec } from "../../lib/netboot";
import { checkNetwork, networkParams } from "./network-files";
import { getNetbootSettings } from "../netboot/settings";
import { agentInstallParams } from "./agent-install";

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
  if (p.kind === "installer") {
    checkNetwork(db, machineId, settings); // the answer files render it: refuse a bad network now, not mid-install
    return { kind: "deploy_installer", params: { osProfileId: p.id, osFamily: p.osFamily } };
  }
  if (p.kind === "agent_install") return { kind: "deploy_agent_install", params: agentInstallParams(db, machineId, p, settings ?? getNetbootSettings(db)) };
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

const ms = (d: Date | null) => d?.getTime() ?? null;

function stepDto(s: Tables["steps"]["$inferSelect"]): StepDto {
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
export async function listMachineJobs(store: Store, machineId: number, limit = 20): Promise<JobDto[]> {
  const { jobs, steps } = store.t;
  const rows = await store.db.select().from(jobs).where(eq(jobs.machineId, machineId)).orderBy(desc(jobs.id)).limit(limit);
  if (!rows.length) return [];
  const stepRows = await store.db
    .select()
    .from(steps)
    .where(inArray(steps.jobId, rows.map((j) => j.id)))
    .orderBy(asc(steps.group), asc(steps.id));
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
export async function jobLogs(store: Store, jobId: number, afterSeq: number, limit: number): Promise<LogLineDto[]> {
  const { logLines } = store.t;
  const rows = await store.db
    .select({ seq: logLines.seq, ts: logLines.ts, stream: logLines.stream, text: logLines.text, stepId: logLines.stepId })
    .from(logLines)
    .where(and(eq(logLines.jobId, jobId), gt(logLines.seq, afterSeq)))
    .orderBy(asc(logLines.seq))
    .limit(limit);
  return rows.map((l) => ({ ...l, ts: l.ts.getTime() }));
}
