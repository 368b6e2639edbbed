import crypto from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
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

/** The job a bearer token belongs to, or null (unknown, revoked). */
export function jobForToken(db: Db, token: string | undefined): { jobId: number; machineId: number; state: string } | null {
  if (!token || token.length > 100) return null;
  const row = db
    .select({ jobId: jobs.id, machineId: jobs.machineId, state: jobs.state })
    .from(agentTokens)
    .innerJoin(jobs, eq(jobs.id, agentTokens.jobId))
    .where(and(eq(agentTokens.tokenHash, sha256(token)), isNull(agentTokens.revokedAt)))
    .get();
  return row ?? null;
}
