import crypto from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Store, StoreTx } from "../db/store";
import { hot } from "../db/hot";

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

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
