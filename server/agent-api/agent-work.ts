/**
 * The agent API's domain work (no HTTP here): find a machine's running job by MAC and issue its token, take the
 * inventory, long-poll for steps, ingest log lines, take step results. `routes.ts` parses requests, authenticates
 * the bearer token through `authenticate` and maps `AgentApiError` kinds to HTTP statuses.
 */
import { and, eq, inArray, max, sql } from "drizzle-orm";
import type { AgentLogLine, HeartbeatResponse, LookupRequest, LookupResponse, ResultRequest } from "../../lib/agent-protocol";
import type { LogLineDto } from "../../lib/jobs";
import { normalizeMac } from "../../lib/net";
import type { Domain } from "../context";
import { pgPoolOf, sqliteDbOf, storeOf } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { AgentNonces, agentBootSessionIn } from "../netboot/agent-nonce";
import type { Orchestrator } from "../orchestrator/orchestrator";
import { hot } from "../db/hot";
import type { StepRow } from "../orchestrator/orchestrator-queries";
import { pgLineInserter } from "./log-lines-pg";
import { issueToken, tokenHash, tokenLookup, tokenRunningLookup, tokenStepLookup } from "./tokens";

export type AgentApiErrorKind = "invalid" | "unauthenticated" | "not_found" | "conflict" | "unavailable";

/** A refusal of the agent API, by kind; the HTTP adapter picks the status. */
export class AgentApiError extends Error {
  constructor(
    readonly kind: AgentApiErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** The job a valid agent token belongs to. */
export interface AgentJob {
  jobId: number;
  machineId: number;
  state: string;
}

export function createAgentWork(d: Domain, orchestrator: Orchestrator) {
  const store = storeOf(d);
  const { agentTokens, jobs, machines, nics } = store.t;
  // The per-call reads, prepared once on SQLite (building drizzle's SQL text per request showed in bench:deploy's profile).
  const jobForToken = tokenLookup(store);
  const jobAndStepForToken = tokenStepLookup(store);
  const jobAndRunningForToken = tokenRunningLookup(store);
  const stateOfJob = hot<{ s: string } | undefined>(store, "get", (db, { jobs }) => db.select({ s: jobs.state }).from(jobs).where(eq(jobs.id, sql.placeholder("id"))));
  const runningJobOf = hot<{ id: number } | undefined>(store, "get", (db, { jobs }) =>
    db
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(eq(jobs.machineId, sql.placeholder("machineId")), eq(jobs.state, "running"))),
  );
  const lastSeqOf = hot<{ seq: number | null } | undefined>(store, "get", (db, { logLines }) =>
    db
      .select({ seq: max(logLines.seq) })
      .from(logLines)
      .where(eq(logLines.jobId, sql.placeholder("id"))),
  );
  /**
   * The job's agent steps that are running: under the agent's lease (agent steps never have a process's
   * `lease_owner`). At a lookup they are the attempts of an agent that restarted; at a heartbeat, those the agent does
   * not list are re-delivered.
   */
  const runningAgentSteps = hot<StepRow[]>(store, "all", (db, { steps }) =>
    db
      .select()
      .from(steps)
      .where(and(eq(steps.jobId, sql.placeholder("id")), eq(steps.runner, "agent"), eq(steps.state, "running"))),
  );

  const nonces = AgentNonces.of(d);
  // Refused lookups are recorded as events, at most one per machine per minute: the endpoint is unauthenticated,
  // and a flood of bad lookups must not become a flood of rows.
  const lastRefusal = new Map<number, number>();
  async function refused(machineId: number, name: string, why: string) {
    const now = Date.now();
    if (now - (lastRefusal.get(machineId) ?? -Infinity) < 60_000) return;
    lastRefusal.set(machineId, now);
    if (lastRefusal.size > 10_000) lastRefusal.clear();
    const event = await recordStoreEvent(store, store.db, {
      actor: "agent",
      machineId,
      kind: "agent.lookup_refused",
      message: `Agent lookup for ${name} refused: ${why} (further refusals within a minute are not recorded)`,
      payload: { reason: why },
    });
    d.bus.publish({ type: "event.created", event });
  }

  /** @throws AgentApiError unauthenticated */
  async function authenticate(token: string | undefined): Promise<AgentJob> {
    const job = await jobForToken(token);
    if (!job) throw new AgentApiError("unauthenticated", "missing, unknown or revoked agent token");
    return job;
  }
  /**
   * A heartbeat's authentication: the token's job, and its agent steps that are running, in one statement (each query
   * is a round trip on PostgreSQL). @throws AgentApiError unauthenticated
   */
  async function authenticateHeartbeat(token: string | undefined): Promise<{ job: AgentJob; leased: StepRow[] }> {
    const found = await jobAndRunningForToken(token);
    if (!found) throw new AgentApiError("unauthenticated", "missing, unknown or revoked agent token");
    return { job: found.job, leased: found.running };
  }
  /**
   * The token's job and one of its steps, read in one statement (each is a round trip on PostgreSQL): a step of
   * another job is refused as a wrong token is. @throws AgentApiError unauthenticated
   */
  async function authenticateStep(token: string | undefined, stepId: number): Promise<{ job: AgentJob; step: StepRow }> {
    const found = await jobAndStepForToken(token, stepId);
    if (!found) throw new AgentApiError("unauthenticated", "missing, unknown or revoked agent token");
    // Another job's token is no credential for this step: the same answer as a wrong token.
    if (!found.step) throw new AgentApiError("unauthenticated", `this token does not belong to step ${stepId}'s job`);
    return { job: found.job, step: found.step };
  }
  /** A step from authenticateStep, checked again against the job it was read with. @throws AgentApiError unauthenticated */
  function ownStep(job: AgentJob, step: StepRow): StepRow {
    if (step.jobId !== job.jobId) throw new AgentApiError("unauthenticated", `this token does not belong to step ${step.id}'s job`);
    return step;
  }

  // The hot path of log ingest. SQLite: one prepared statement per row inside the transaction: drizzle's multi-row
  // INSERT ... RETURNING cost ~19 ms per 1,000 lines here, this ~3 ms (bench:deploy measures the whole route).
  // Columns as in server/db/schema/jobs.ts logLines; ts in ms (timestamp_ms). PostgreSQL: one statement per batch.
  const insertLine =
    store.dialect === "sqlite"
      ? sqliteDbOf(store).$client.prepare("INSERT INTO log_lines (job_id, step_id, seq, ts, stream, text) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, seq) DO NOTHING")
      : null;
  const insertPgLines = store.dialect === "postgres" ? pgLineInserter(pgPoolOf(store)) : null;
  /**
   * A batch in one transaction (SQLite) or one statement (PostgreSQL); a line already stored (same job and seq) is a
   * resend and is skipped, and of two lines with one seq in a batch the first is kept. A NUL in a line (a program's
   * binary output) is stored as U+2400 "␀" on both databases: PostgreSQL's text cannot hold it.
   */
  async function insertLines(jobId: number, stepId: number, sent: AgentLogLine[]): Promise<LogLineDto[]> {
    const lines = sent.map((l) => (l.text.includes("\0") ? { ...l, text: l.text.replaceAll("\0", "\u2400") } : l));
    if (insertPgLines) return insertPgLines(jobId, stepId, lines);
    return store.transaction(() => {
      const taken: LogLineDto[] = [];
      for (const l of lines) {
        if (insertLine!.run(jobId, stepId, l.seq, l.ts, l.stream, l.text).changes === 1) taken.push({ seq: l.seq, ts: l.ts, stream: l.stream, text: l.text, stepId });
      }
      return Promise.resolve(taken);
    });
  }

  /** The running job of the machine with one of these MACs, with a fresh token. @throws AgentApiError */
  async function lookup(body: LookupRequest): Promise<LookupResponse> {
    const macs = body.macs.map(normalizeMac).filter((m): m is string => m !== null);
    if (!macs.length) throw new AgentApiError("invalid", "macs: no valid MAC address");
    const [found] = await store.db
      .select({ machineId: machines.id, name: machines.name })
      .from(nics)
      .innerJoin(machines, eq(machines.id, nics.machineId))
      .where(inArray(nics.mac, macs))
      .limit(1);
    if (!found) throw new AgentApiError("not_found", "no machine with these MACs is enrolled");
    // The per-boot nonce (server/netboot/agent-nonce.ts) is in this machine's boot entry only: a MAC alone (which
    // every viewer sees) is no credential.
    const session = await agentBootSessionIn(store, store.db, found.machineId);
    if (!body.nonce || session === null || !nonces.verify(found.machineId, session, body.nonce)) {
      const why = !body.nonce ? "no nonce" : session === null ? `${found.name} does not netboot the agent now` : "wrong nonce";
      await refused(found.machineId, found.name, why);
      throw new AgentApiError(
        "unauthenticated",
        !body.nonce ? "lookup refused: no nonce (rackhand.nonce= from this machine's boot entry)" : "lookup refused: the nonce is not the one of this machine's current boot",
      );
    }
    const seenAt = Date.now();
    const result = await store.transaction(async (tx) => {
      const job = await runningJobOf(tx, { machineId: found.machineId });
      if (!job) return null;
      await tx.update(jobs).set({ agentSeenAt: new Date(seenAt) }).where(eq(jobs.id, job.id));
      // Inventory is taken from the first lookup of a job only; a second lookup (the agent restarted — or someone
      // who read this boot's entry, and so its nonce) gets a new token, revoking the old one, and is recorded as an event.
      const again = (await tx.select({ jobId: agentTokens.jobId }).from(agentTokens).where(eq(agentTokens.jobId, job.id)).limit(1)).length > 0;
      if (body.inventory && !again) await tx.update(machines).set({ inventory: body.inventory }).where(eq(machines.id, found.machineId));
      const relookup = again
        ? await recordStoreEvent(store, tx, {
            actor: "agent",
            machineId: found.machineId,
            kind: "agent.relookup",
            message: `Another agent lookup for job ${job.id}: its previous agent token was replaced${body.inventory ? "; the inventory sent was ignored" : ""}`,
            payload: { jobId: job.id, inventoryIgnored: !!body.inventory },
          })
        : null;
      // Seqs are job-wide: an agent that restarted mid-job must not reuse (and so lose) sequence numbers.
      const last = await lastSeqOf(tx, { id: job.id });
      return { jobId: job.id, token: await issueToken(store, tx, job.id, found.machineId), nextSeq: (last?.seq ?? -1) + 1, relookup };
    });
    if (!result) throw new AgentApiError("not_found", `no work for ${found.name}: it has no running job`);
    const { relookup, ...answer } = result;
    if (relookup) d.bus.publish({ type: "event.created", event: relookup });
    // A lookup for a job whose agent steps are running means the agent restarted (one agent per machine):
    // those attempts died with it. End them as transient failures so the retry policy runs them again now,
    // rather than when their leases expire.
    const orphaned = await runningAgentSteps(store.db, { id: answer.jobId });
    for (const s of orphaned) await orchestrator.complete(s.id, s.attempt, { ok: false, transient: true, message: "the agent restarted while the step ran" });
    // The agent is up: its job's wait_agent step is over now, not at the next tick.
    await orchestrator.agentSeen(answer.jobId, seenAt);
    return { machineId: found.machineId, machineName: found.name, ...answer };
  }

  /**
   * Claim the job's runnable agent steps, waiting up to `waitS` for some. `gone()` says the caller went away
   * meanwhile; `token` is re-checked after the wait (a new lookup may have replaced it). `leased`: the job's running
   * agent steps as authenticateHeartbeat read them (read here when not given). @throws AgentApiError
   */
  async function heartbeat(job: AgentJob, waitS: number, gone: () => boolean, token: string | undefined, running?: number[], leased?: StepRow[]): Promise<HeartbeatResponse> {
    const state = async () => (await stateOfJob(store.db, { id: job.jobId }))!.s;
    const mark = orchestrator.workMark(job.jobId);
    // Steps leased to the agent that it says it is not running: their claim's answer was lost (the claiming process
    // died after its commit, a cut connection). Read before the claim: no query runs between a claim and its answer.
    const lost = running ? (leased ?? (await runningAgentSteps(store.db, { id: job.jobId }))).filter((s) => !running.includes(s.id)) : [];
    let { claimed, jobState } = await orchestrator.claimAgentStepsOf(job.jobId);
    if (lost.length) claimed = [...lost.filter((s) => !claimed.some((c) => c.id === s.id)), ...claimed];
    if (!claimed.length && jobState === "running" && waitS > 0) {
      await orchestrator.waitForWork(job.jobId, waitS * 1000, mark);
      // The agent retries with backoff; it must not read "no work" into a shutdown.
      if (orchestrator.stopped) throw new AgentApiError("unavailable", "server shutting down");
      // While this poll waited, its agent may have died (the connection closed) or been replaced (a new lookup
      // rotated the token): claiming now would lease steps to nobody until their timeout.
      if (gone()) return { done: false, jobState: await state(), steps: [] };
      // The job ended while this (authenticated) poll waited — cancelled, failed or done: say so; its token is
      // revoked now, and the next call would only get a 401.
      // One statement when work is there: the claim checks that the token is still the job's live one (a new lookup
      // may have replaced it). Without work: the job ended meanwhile (say so: its token is revoked now, and the next
      // call would only get a 401), or the token was replaced (401), or nothing yet.
      ({ claimed, jobState } = await orchestrator.claimAgentStepsOf(job.jobId, token ? tokenHash(token) : null));
      if (!claimed.length) {
        const now = jobState ?? (await state());
        if (now !== "running") return { done: true, jobState: now, steps: [] };
        await authenticate(token);
      }
    }
    // No query after the claim: its steps are the agent's now, and an error here would hide them from it.
    const js = jobState ?? (await state());
    return {
      done: js !== "running",
      jobState: js,
      steps: claimed.map((s) => ({ id: s.id, name: s.name, attempt: s.attempt, timeoutS: s.timeoutS, params: s.params ?? {} })),
    };
  }

  /**
   * Store a batch of a step's log lines (a resent line is skipped) and publish the new ones. `step` is the one
   * authenticateStep returned. @throws AgentApiError
   */
  async function ingestLogs(job: AgentJob, step: StepRow, lines: AgentLogLine[]): Promise<{ accepted: number }> {
    const inserted = await insertLines(job.jobId, ownStep(job, step).id, lines);
    orchestrator.publishLogs(job.jobId, job.machineId, inserted);
    return { accepted: inserted.length };
  }

  /** The outcome of a step attempt (the inventory step's result becomes the machine's inventory). @throws AgentApiError */
  async function reportResult(job: AgentJob, checked: StepRow, body: ResultRequest): Promise<{ ok: true }> {
    const step = ownStep(job, checked);
    const stepId = step.id;
    const outcome = body.ok ? { ok: true as const, result: body.result } : { ok: false as const, ...body.error };
    if (body.ok && step.name === "inventory" && body.result) {
      await store.db.update(machines).set({ inventory: body.result }).where(eq(machines.id, job.machineId));
    }
    if (!(await orchestrator.complete(stepId, body.attempt, outcome))) {
      throw new AgentApiError("conflict", `step ${stepId} attempt ${body.attempt} is not the running attempt (timed out or already reported)`);
    }
    return { ok: true };
  }

  return { authenticate, authenticateHeartbeat, authenticateStep, lookup, heartbeat, ingestLogs, reportResult };
}
export type AgentWork = ReturnType<typeof createAgentWork>;
