/**
 * Job planning (deploy params from the OS profile) and reads (timeline, logs), on the Store (either database).
 * Job state: job-state.ts.
 */
import { and, asc, desc, eq, gt, inArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { JobDto, JobKind, LogLineDto, StepDto } from "../../lib/jobs";
import type { OsProfile } from "../db/schema";
import type { Store, StoreDb, StoreTx, Tables } from "../db/store";
import { profileOptionsSchema, type NetbootSettings, type RaidSpec } from "../../lib/netboot";
import { checkNetwork, networkParams } from "./network-files";
import { loadNetbootSettings } from "../netboot/settings";
import { agentInstallParams } from "./agent-install";

type Q = StoreDb | StoreTx;

/**
 * Job params for a deploy from the machine's OS profile, read through `q` (the Store's db, or the transaction that
 * creates the job). @throws AppError MACHINE_NOT_FOUND, VALIDATION when it has none
 */
export async function deployParams(store: Store, q: Q, machineId: number): Promise<{ kind: JobKind; params: Record<string, unknown> }> {
  const { machines, osProfiles } = store.t;
  const [row] = await q.select({ p: osProfiles }).from(machines).leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId)).where(eq(machines.id, machineId)).limit(1);
  if (!row) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  return deployParamsFor(store, q, machineId, row.p);
}

/** The job a reinstall runs: an image profile cleans and deploys in one job; an installer reinstalls by installing. */
export function reinstallKind(deployKind: JobKind): JobKind {
  return deployKind === "deploy_image" ? "reinstall" : deployKind;
}

/**
 * deployParams with the machine's profile (and the netboot settings) already read: a batch reads them once for all
 * its machines. @throws AppError VALIDATION
 */
export async function deployParamsFor(
  store: Store,
  q: Q,
  machineId: number,
  p: OsProfile | null,
  settings?: NetbootSettings,
): Promise<{ kind: JobKind; params: Record<string, unknown> }> {
  if (!p) throw new AppError("VALIDATION", "Choose an OS profile for the machine before deploying it");
  const s = settings ?? (await loadNetbootSettings(store, q));
  if (p.kind === "installer") {
    await checkNetwork(store, q, machineId, s); // the answer files render it: refuse a bad network now, not mid-install
    return { kind: "deploy_installer", params: { osProfileId: p.id, osFamily: p.osFamily } };
  }
  if (p.kind === "agent_install") return { kind: "deploy_agent_install", params: await agentInstallParams(store, q, machineId, p, s) };
  if (!p.imageUrl) throw new AppError("VALIDATION", `OS profile ${p.name} has no image URL`);
  const net = await networkParams(store, q, machineId, p, s);
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
      ...net,
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
