import type http from "node:http";
import { and, eq, inArray, max, sql } from "drizzle-orm";
import type { ZodType } from "zod";
import {
  AGENT_API_PREFIX,
  heartbeatRequest,
  logsRequest,
  lookupRequest,
  resultRequest,
  type AgentLogLine,
  type HeartbeatResponse,
  type LookupResponse,
} from "../../lib/agent-protocol";
import type { LogLineDto } from "../../lib/jobs";
import { normalizeMac } from "../../lib/net";
import type { Domain } from "../context";
import { jobs, logLines, machines, nics, steps } from "../db/schema";
import { HttpError, readJson, sendJson } from "../http/json";
import type { Orchestrator } from "../orchestrator/orchestrator";
import { issueToken, tokenLookup } from "./tokens";

const SMALL_BODY = 256 * 1024;
const LOG_BODY = 4 * 1024 * 1024;

function parse<T>(schema: ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(400, r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  return r.data;
}

function bearer(req: http.IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined;
}

/**
 * The agent's HTTP API (plain JSON, token-authenticated): lookup, heartbeat (long-poll), log ingest, step results.
 * Returns false when the path is not the agent API's.
 */
export function createAgentApi(d: Domain, orchestrator: Orchestrator) {
  // The per-call reads, prepared once (building drizzle's SQL text per request showed in bench:deploy's profile).
  const jobForToken = tokenLookup(d.db);
  const stepById = d.db.select().from(steps).where(eq(steps.id, sql.placeholder("id"))).prepare();
  const stateOfJob = d.db.select({ s: jobs.state }).from(jobs).where(eq(jobs.id, sql.placeholder("id"))).prepare();
  const runningJobOf = d.db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.machineId, sql.placeholder("machineId")), eq(jobs.state, "running")))
    .prepare();
  const lastSeqOf = d.db.select({ seq: max(logLines.seq) }).from(logLines).where(eq(logLines.jobId, sql.placeholder("id"))).prepare();
  const runningAgentSteps = d.db
    .select({ id: steps.id, attempt: steps.attempt })
    .from(steps)
    .where(and(eq(steps.jobId, sql.placeholder("id")), eq(steps.runner, "agent"), eq(steps.state, "running")))
    .prepare();

  function authed(req: http.IncomingMessage) {
    const job = jobForToken(bearer(req));
    if (!job) throw new HttpError(401, "missing, unknown or revoked agent token");
    return job;
  }
  function stepOfJob(stepId: number, jobId: number) {
    const s = stepById.get({ id: stepId });
    // Another job's token is no credential for this step: the same answer as a wrong token.
    if (!s || s.jobId !== jobId) throw new HttpError(401, `this token does not belong to step ${stepId}'s job`);
    return s;
  }

  // The hot path of log ingest, as one prepared statement per row inside a transaction: drizzle's multi-row
  // INSERT ... RETURNING cost ~19 ms per 1,000 lines here, this ~3 ms (bench:deploy measures the whole route).
  // Columns as in server/db/schema/jobs.ts logLines; ts in ms (timestamp_ms).
  const insertLine = d.db.$client.prepare(
    "INSERT INTO log_lines (job_id, step_id, seq, ts, stream, text) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, seq) DO NOTHING",
  );
  const insertLines = d.db.$client.transaction((jobId: number, stepId: number, lines: AgentLogLine[]): LogLineDto[] => {
    const taken: LogLineDto[] = [];
    for (const l of lines) {
      if (insertLine.run(jobId, stepId, l.seq, l.ts, l.stream, l.text).changes === 1) taken.push({ seq: l.seq, ts: l.ts, stream: l.stream, text: l.text, stepId });
    }
    return taken;
  });

  async function lookup(req: http.IncomingMessage): Promise<LookupResponse> {
    const body = parse(lookupRequest, await readJson(req, SMALL_BODY));
    const macs = body.macs.map(normalizeMac).filter((m): m is string => m !== null);
    if (!macs.length) throw new HttpError(400, "macs: no valid MAC address");
    const found = d.db
      .select({ machineId: machines.id, name: machines.name })
      .from(nics)
      .innerJoin(machines, eq(machines.id, nics.machineId))
      .where(inArray(nics.mac, macs))
      .get();
    if (!found) throw new HttpError(404, "no machine with these MACs is enrolled");
    const seenAt = Date.now();
    const result = d.db.transaction((tx) => {
      // Prepared on the same connection, so they read inside this transaction.
      const job = runningJobOf.get({ machineId: found.machineId });
      if (!job) return null;
      tx.update(jobs).set({ agentSeenAt: new Date(seenAt) }).where(eq(jobs.id, job.id)).run();
      if (body.inventory) tx.update(machines).set({ inventory: body.inventory }).where(eq(machines.id, found.machineId)).run();
      // Seqs are job-wide: an agent that restarted mid-job must not reuse (and so lose) sequence numbers.
      const last = lastSeqOf.get({ id: job.id });
      return { jobId: job.id, token: issueToken(tx, job.id, found.machineId), nextSeq: (last?.seq ?? -1) + 1 };
    });
    if (!result) throw new HttpError(404, `no work for ${found.name}: it has no running job`);
    // A lookup for a job whose agent steps are running means the agent restarted (one agent per machine):
    // those attempts died with it. End them as transient failures so the retry policy runs them again now,
    // rather than when their leases expire.
    const orphaned = runningAgentSteps.all({ id: result.jobId });
    for (const s of orphaned) orchestrator.complete(s.id, s.attempt, { ok: false, transient: true, message: "the agent restarted while the step ran" });
    // The agent is up: its job's wait_agent step is over now, not at the next tick.
    orchestrator.agentSeen(result.jobId, seenAt);
    return { machineId: found.machineId, machineName: found.name, ...result };
  }

  async function heartbeat(req: http.IncomingMessage, res: http.ServerResponse): Promise<HeartbeatResponse> {
    const job = authed(req);
    const { waitS } = parse(heartbeatRequest, await readJson(req, SMALL_BODY));
    const state = () => stateOfJob.get({ id: job.jobId })!.s;
    let claimed = orchestrator.claimAgentSteps(job.jobId);
    if (!claimed.length && state() === "running" && waitS > 0) {
      let gone = false;
      res.once("close", () => (gone = true));
      await orchestrator.waitForWork(job.jobId, waitS * 1000);
      // The agent retries with backoff; it must not read "no work" into a shutdown.
      if (orchestrator.stopped) throw new HttpError(503, "server shutting down");
      // While this poll waited, its agent may have died (the connection closed) or been replaced (a new lookup
      // rotated the token): claiming now would lease steps to nobody until their timeout.
      if (gone) return { done: false, jobState: state(), steps: [] };
      // The job ended while this (authenticated) poll waited — cancelled, failed or done: say so; its token is
      // revoked now, and the next call would only get a 401.
      if (state() !== "running") return { done: true, jobState: state(), steps: [] };
      authed(req);
      claimed = orchestrator.claimAgentSteps(job.jobId);
    }
    const jobState = state();
    return {
      done: jobState !== "running",
      jobState,
      steps: claimed.map((s) => ({ id: s.id, name: s.name, attempt: s.attempt, timeoutS: s.timeoutS, params: s.params ?? {} })),
    };
  }

  async function logs(req: http.IncomingMessage, stepId: number): Promise<{ accepted: number }> {
    const job = authed(req);
    stepOfJob(stepId, job.jobId);
    const { lines } = parse(logsRequest, await readJson(req, LOG_BODY));
    // One transaction per batch; a line already stored (same job and seq) is a resend and is skipped.
    const inserted = insertLines(job.jobId, stepId, lines);
    orchestrator.publishLogs(job.jobId, job.machineId, inserted);
    return { accepted: inserted.length };
  }

  async function result(req: http.IncomingMessage, stepId: number): Promise<{ ok: true }> {
    const job = authed(req);
    const step = stepOfJob(stepId, job.jobId);
    const body = parse(resultRequest, await readJson(req, SMALL_BODY));
    const outcome = body.ok ? { ok: true as const, result: body.result } : { ok: false as const, ...body.error };
    if (body.ok && step.name === "inventory" && body.result) {
      d.db.update(machines).set({ inventory: body.result }).where(eq(machines.id, job.machineId)).run();
    }
    if (!orchestrator.complete(stepId, body.attempt, outcome)) {
      throw new HttpError(409, `step ${stepId} attempt ${body.attempt} is not the running attempt (timed out or already reported)`);
    }
    return { ok: true };
  }

  return async function handle(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): Promise<boolean> {
    if (!pathname.startsWith(AGENT_API_PREFIX + "/")) return false;
    const path = pathname.slice(AGENT_API_PREFIX.length);
    try {
      if (req.method !== "POST") throw new HttpError(405, "use POST");
      let m: RegExpMatchArray | null;
      if (path === "/lookup") sendJson(res, 200, await lookup(req));
      else if (path === "/heartbeat") sendJson(res, 200, await heartbeat(req, res));
      else if ((m = path.match(/^\/steps\/(\d{1,12})\/logs$/))) sendJson(res, 200, await logs(req, Number(m[1])));
      else if ((m = path.match(/^\/steps\/(\d{1,12})\/result$/))) sendJson(res, 200, await result(req, Number(m[1])));
      else throw new HttpError(404, `no agent API at ${path}`);
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.message });
      else {
        d.log.error("agent API error", { path, error: String(err) });
        sendJson(res, 500, { error: "internal error" });
      }
      // Drain whatever the client still sends so the connection stays usable.
      req.resume();
    }
    return true;
  };
}
