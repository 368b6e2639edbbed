import { and, asc, eq, isNotNull, lte, or, sql, type SQL } from "drizzle-orm";
import type { Domain } from "../context";
import { jobs, steps } from "../db/schema";

/**
 * A value in `set()` given when the statement runs, as SQLite stores it: epoch milliseconds for timestamps, JSON text
 * for JSON columns, or null (the columns' encoders are not applied to it; use `stored()` for the conversions).
 */
const ph = (name: string): SQL => sql`${sql.placeholder(name)}`;

/** A JSON column's value for a `ph()` placeholder. */
export const jsonText = (v: Record<string, unknown> | null | undefined): string | null => (v == null ? null : JSON.stringify(v));

/**
 * The engine's hot statements, prepared once: a pass runs after every step result, and building the SQL text of
 * each query every time was most of its cost (bench:deploy, docs/BENCHMARKS.md). Values in `set()` are
 * placeholders (`ph`) filled with what SQLite stores.
 */
export function prepareQueries(db: Domain["db"]) {
  const now = sql.placeholder("now");
  const id = sql.placeholder("id");
  return {
    expired: db
      .select()
      .from(steps)
      .where(and(eq(steps.state, "running"), lte(steps.leaseExpiresAt, now)))
      .prepare(),
    /** Running passive steps whose event (a column of their job, see engine.ts WAIT_EVENTS) already happened. */
    satisfiedWaits: db
      .select({ id: steps.id, attempt: steps.attempt, name: steps.name, agentSeenAt: jobs.agentSeenAt, installDoneAt: jobs.installDoneAt })
      .from(steps)
      .innerJoin(jobs, eq(jobs.id, steps.jobId))
      .where(
        and(
          eq(steps.state, "running"),
          or(and(eq(steps.name, "wait_agent"), isNotNull(jobs.agentSeenAt)), and(eq(steps.name, "wait_install"), isNotNull(jobs.installDoneAt))),
        ),
      )
      .prepare(),
    dueRetries: db
      .selectDistinct({ jobId: steps.jobId })
      .from(steps)
      .where(and(eq(steps.state, "pending"), lte(steps.nextAttemptAt, now)))
      .prepare(),
    job: db.select().from(jobs).where(eq(jobs.id, id)).prepare(),
    stepsOfJob: db.select().from(steps).where(eq(steps.jobId, id)).orderBy(asc(steps.group), asc(steps.id)).prepare(),
    step: db.select().from(steps).where(eq(steps.id, id)).prepare(),
    readySteps: db
      .select()
      .from(steps)
      .where(and(eq(steps.jobId, id), eq(steps.state, "ready")))
      .prepare(),
    runningWait: db
      .select({ id: steps.id, attempt: steps.attempt })
      .from(steps)
      .where(and(eq(steps.jobId, id), eq(steps.state, "running"), eq(steps.name, sql.placeholder("name"))))
      .prepare(),
    readyStep: db.update(steps).set({ state: "ready" }).where(eq(steps.id, id)).prepare(),
    /** Lease a step to a runner (server or agent) until its timeout. */
    claimStep: db
      .update(steps)
      .set({ state: "running", attempt: ph("attempt"), startedAt: ph("at"), leaseExpiresAt: ph("lease"), nextAttemptAt: null })
      .where(eq(steps.id, id))
      .returning()
      .prepare(),
    succeedStep: db
      .update(steps)
      .set({ state: "succeeded", leaseExpiresAt: null, finishedAt: ph("at"), error: null, result: ph("result") })
      .where(eq(steps.id, id))
      .prepare(),
    finishStep: db
      .update(steps)
      .set({
        state: ph("state"),
        leaseExpiresAt: null,
        nextAttemptAt: ph("nextAttemptAt"),
        finishedAt: ph("finishedAt"),
        error: ph("error"),
        result: ph("result"),
      })
      .where(eq(steps.id, id))
      .prepare(),
  };
}
