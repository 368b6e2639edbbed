import crypto from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Store, StoreTx } from "../db/store";
import { hot } from "../db/hot";
import type { StepRow } from "../orchestrator/orchestrator-queries";

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");
/** How a token is stored (and looked up): its SHA-256, hex. */
export const tokenHash = sha256;

/**
 * Issue the token of a job. One live token per job: a new lookup (the agent restarted and lost its token)
 * replaces the previous one. Only the hash is stored.
 */
export async function issueToken(store: Store, tx: Pick<StoreTx, "insert">, jobId: number, machineId: number): Promise<string> {
  const { agentTokens } = store.t;
  const token = crypto.randomBytes(32).toString("base64url");
  await tx
    .insert(agentTokens)
    .values({ jobId, machineId, tokenHash: sha256(token), createdAt: new Date() })
    .onConflictDoUpdate({ target: agentTokens.jobId, set: { tokenHash: sha256(token), createdAt: new Date(), revokedAt: null } });
  return token;
}

/**
 * The job a bearer token belongs to, or null (unknown, revoked). Every agent call asks, so the query is prepared
 * once per Store (on SQLite).
 */
export function tokenLookup(store: Store): (token: string | undefined) => Promise<{ jobId: number; machineId: number; state: string } | null> {
  const q = hot<{ jobId: number; machineId: number; state: string } | undefined>(store, "get", (db, { agentTokens, jobs }) =>
    db
      .select({ jobId: jobs.id, machineId: jobs.machineId, state: jobs.state })
      .from(agentTokens)
      .innerJoin(jobs, eq(jobs.id, agentTokens.jobId))
      .where(and(eq(agentTokens.tokenHash, sql.placeholder("hash")), isNull(agentTokens.revokedAt))),
  );
  return async (token) => (!token || token.length > 100 ? null : ((await q(store.db, { hash: sha256(token) })) ?? null));
}

type TokenJob = { jobId: number; machineId: number; state: string };

/**
 * The job a bearer token belongs to, with one of that job's steps (null when the step is another job's or does not
 * exist), in one statement: the log and result calls need both, and each query is a round trip on PostgreSQL. Null
 * when the token is unknown or revoked, read at every call as tokenLookup does (a revocation holds at once on every
 * process).
 */
export function tokenStepLookup(store: Store): (token: string | undefined, stepId: number) => Promise<{ job: TokenJob; step: StepRow | null } | null> {
  const q = hot<{ jobId: number; machineId: number; state: string; step: StepRow | null } | undefined>(store, "get", (db, { agentTokens, jobs, steps }) =>
    db
      .select({ jobId: jobs.id, machineId: jobs.machineId, state: jobs.state, step: steps })
      .from(agentTokens)
      .innerJoin(jobs, eq(jobs.id, agentTokens.jobId))
      .leftJoin(steps, and(eq(steps.id, sql.placeholder("step")), eq(steps.jobId, jobs.id)))
      .where(and(eq(agentTokens.tokenHash, sql.placeholder("hash")), isNull(agentTokens.revokedAt))),
  );
  return async (token, stepId) => {
    if (!token || token.length > 100) return null;
    const row = await q(store.db, { hash: sha256(token), step: stepId });
    return row ? { job: { jobId: row.jobId, machineId: row.machineId, state: row.state }, step: row.step } : null;
  };
}

/**
 * The job a bearer token belongs to, with the job's agent steps that are running (leased to its agent), in one
 * statement: a heartbeat needs both (agent-work.ts heartbeat). Null when the token is unknown or revoked.
 */
export function tokenRunningLookup(store: Store): (token: string | undefined) => Promise<{ job: TokenJob; running: StepRow[] } | null> {
  const q = hot<{ jobId: number; machineId: number; state: string; step: StepRow | null }[]>(store, "all", (db, { agentTokens, jobs, steps }) =>
    db
      .select({ jobId: jobs.id, machineId: jobs.machineId, state: jobs.state, step: steps })
      .from(agentTokens)
      .innerJoin(jobs, eq(jobs.id, agentTokens.jobId))
      .leftJoin(steps, and(eq(steps.jobId, jobs.id), eq(steps.runner, "agent"), eq(steps.state, "running")))
      .where(and(eq(agentTokens.tokenHash, sql.placeholder("hash")), isNull(agentTokens.revokedAt))),
  );
  return async (token) => {
    if (!token || token.length > 100) return null;
    const rows = await q(store.db, { hash: sha256(token) });
    const first = rows[0];
    if (!first) return null;
    return { job: { jobId: first.jobId, machineId: first.machineId, state: first.state }, running: rows.flatMap((r) => (r.step ? [r.step] : [])) };
  };
}
