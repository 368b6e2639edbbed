import crypto from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { agentTokens, jobs } from "../db/schema";

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

/**
 * Issue the token of a job. One live token per job: a new lookup (the agent restarted and lost its token)
 * replaces the previous one. Only the hash is stored.
 */
export function issueToken(tx: Pick<Db, "insert" | "update" | "select">, jobId: number, machineId: number): string {
  const token = crypto.randomBytes(32).toString("base64url");
  tx.insert(agentTokens)
    .values({ jobId, machineId, tokenHash: sha256(token), createdAt: new Date() })
    .onConflictDoUpdate({ target: agentTokens.jobId, set: { tokenHash: sha256(token), createdAt: new Date(), revokedAt: null } })
    .run();
  return token;
}

/**
 * The job a bearer token belongs to, or null (unknown, revoked). Every agent call asks, so the query is prepared
 * once per database.
 */
export function tokenLookup(db: Db): (token: string | undefined) => { jobId: number; machineId: number; state: string } | null {
  const q = db
    .select({ jobId: jobs.id, machineId: jobs.machineId, state: jobs.state })
    .from(agentTokens)
    .innerJoin(jobs, eq(jobs.id, agentTokens.jobId))
    .where(and(eq(agentTokens.tokenHash, sql.placeholder("hash")), isNull(agentTokens.revokedAt)))
    .prepare();
  return (token) => (!token || token.length > 100 ? null : (q.get({ hash: sha256(token) }) ?? null));
}
