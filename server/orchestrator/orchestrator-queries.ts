import { and, asc, eq, getTableColumns, isNotNull, isNull, lte, or, sql, type SQL } from "drizzle-orm";
import { plusSeconds } from "../db/sql";
import { hot } from "../db/hot";
import type { Store, Tables } from "../db/store";

export type StepRow = Tables["steps"]["$inferSelect"];
export type JobRow = Tables["jobs"]["$inferSelect"];
/** A step leased by `claimAgentReady`, with what the heartbeat and the live event need of its job. */
export type ClaimedStep = StepRow & { jobMachineId: number; jobBatchId: number | null; jobState: string };

/**
 * A value in `set()` given when the statement runs, as the driver takes it (`at()` for timestamps, `jsonText()` for
 * JSON columns, or null): the columns' encoders are not applied to placeholders.
 */
const ph = (name: string): SQL => sql`${sql.placeholder(name)}`;
/** A step's outcome as finishStep and finishHeldStep write it (lease released). */
const finishedValues = {
  state: ph("state"),
  leaseOwner: null,
  leaseExpiresAt: null,
  nextAttemptAt: ph("nextAttemptAt"),
  finishedAt: ph("finishedAt"),
  error: ph("error"),
  result: ph("result"),
};

/** A JSON column's value for a `ph()` placeholder (SQLite's JSON text; PostgreSQL casts the text to jsonb). */
export const jsonText = (v: Record<string, unknown> | null | undefined): string | null => (v == null ? null : JSON.stringify(v));

/**
 * The engine's hot statements (orchestrator.ts, agent-api), once per Store. `at(ms)` is a timestamp's driver value
 * for placeholders (epoch ms on SQLite, a Date on PostgreSQL).
 */
export function prepareQueries(store: Store) {
  const now = sql.placeholder("now");
  const id = sql.placeholder("id");
  const pg = store.dialect === "postgres";
  return {
    at: (ms: number): unknown => (pg ? new Date(ms) : ms),
    /**
     * Running steps past their time: an agent's (or a SQLite server step's) lease, which is its timeout; on
     * PostgreSQL a server step leased to a process (`lease_owner`) is timed by its start plus its timeout, since its
     * lease is only the holder's liveness (a lapsed one is taken over, not failed: server/db/pg/leases.ts).
     */
    expired: hot<StepRow[]>(store, "all", (db, { steps }) =>
      db
        .select()
        .from(steps)
        .where(
          and(
            eq(steps.state, "running"),
            pg
              ? or(
                  and(isNull(steps.leaseOwner), lte(steps.leaseExpiresAt, now)),
                  and(isNotNull(steps.leaseOwner), lte(plusSeconds(store.dialect, steps.startedAt, steps.timeoutS), now)),
                )
              : lte(steps.leaseExpiresAt, now),
          ),
        ),
    ),
    /** Running passive steps whose event (a column of their job, see orchestrator.ts WAIT_EVENTS) already happened. */
    satisfiedWaits: hot<{ id: number; attempt: number; name: string; agentSeenAt: Date | null; installDoneAt: Date | null }[]>(store, "all", (db, { steps, jobs }) =>
      db
        .select({ id: steps.id, attempt: steps.attempt, name: steps.name, agentSeenAt: jobs.agentSeenAt, installDoneAt: jobs.installDoneAt })
        .from(steps)
        .innerJoin(jobs, eq(jobs.id, steps.jobId))
        .where(
          and(
            eq(steps.state, "running"),
            or(and(eq(steps.name, "wait_agent"), isNotNull(jobs.agentSeenAt)), and(eq(steps.name, "wait_install"), isNotNull(jobs.installDoneAt))),
          ),
        ),
    ),
    dueRetries: hot<{ jobId: number }[]>(store, "all", (db, { steps }) =>
      db
        .selectDistinct({ jobId: steps.jobId })
        .from(steps)
        .where(and(eq(steps.state, "pending"), lte(steps.nextAttemptAt, now))),
    ),
    /**
     * Running jobs with no step running or ready: nothing will move them but an advance. A process that completed a
     * group's last step and died before its advance (SIGKILL between the two transactions) leaves such a job behind,
     * and no surviving process would otherwise look at it (PostgreSQL; one SQLite process re-reads every running job
     * at start). A job waiting out a retry's backoff is also here; advancing it early does nothing.
     */
    stalledJobs: hot<{ id: number }[]>(store, "all", (db, { jobs, steps }) =>
      db
        .select({ id: jobs.id })
        .from(jobs)
        .where(
          and(
            eq(jobs.state, "running"),
            sql`not exists (select 1 from ${steps} where ${steps.jobId} = ${jobs.id} and ${steps.state} in ('running', 'ready'))`,
          ),
        ),
    ),
    job: hot<JobRow | undefined>(store, "get", (db, { jobs }) => db.select().from(jobs).where(eq(jobs.id, id))),
    /** The job's row, locked for the rest of the transaction on PostgreSQL (one process advances a job at a time). */
    jobForUpdate: hot<JobRow | undefined>(store, "get", (db, { jobs }) => {
      const q = db.select().from(jobs).where(eq(jobs.id, id));
      return pg ? q.for("update") : q;
    }),
    /**
     * PostgreSQL: the row of a step's job, locked for the rest of the transaction (a step's outcome and its job's
     * advance in one transaction); null on SQLite, which advances in a pass of its own.
     */
    jobOfStepForUpdate: pg
      ? hot<JobRow | undefined>(store, "get", (db, { jobs, steps }) =>
          db
            .select()
            .from(jobs)
            .where(eq(jobs.id, sql`(select ${steps.jobId} from ${steps} where ${steps.id} = ${id})`))
            .for("update"),
        )
      : null,
    stepsOfJob: hot<StepRow[]>(store, "all", (db, { steps }) => db.select().from(steps).where(eq(steps.jobId, id)).orderBy(asc(steps.group), asc(steps.id))),
    step: hot<StepRow | undefined>(store, "get", (db, { steps }) => db.select().from(steps).where(eq(steps.id, id))),
    /**
     * A step's row with its job's machine and batch (for the live event), the step locked for the rest of the
     * transaction on PostgreSQL (outcomes of one step are taken one at a time).
     */
    stepWithJobForUpdate: hot<(StepRow & { jobMachineId: number; jobBatchId: number | null }) | undefined>(store, "get", (db, { steps, jobs }) => {
      const q = db
        .select({ ...getTableColumns(steps), jobMachineId: jobs.machineId, jobBatchId: jobs.batchId })
        .from(steps)
        .innerJoin(jobs, eq(jobs.id, steps.jobId))
        .where(eq(steps.id, id));
      return pg ? q.for("update", { of: steps }) : q;
    }),
    /**
     * PostgreSQL: a step's outcome, written only while the step still runs this attempt under this holder (`owner`,
     * null for an agent's lease); the row as written, or none. Null on SQLite (one process; finishStep).
     */
    finishHeldStep: pg
      ? hot<StepRow | undefined>(store, "get", (db, { steps }) =>
          db
            .update(steps)
            .set(finishedValues)
            .where(
              and(
                eq(steps.id, id),
                eq(steps.state, "running"),
                eq(steps.attempt, sql.placeholder("attempt")),
                sql`${steps.leaseOwner} is not distinct from ${sql.placeholder("owner")}::text`,
              ),
            )
            .returning(),
        )
      : null,
        readySteps: hot<StepRow[]>(store, "all", (db, { steps }) =>
      db
        .select()
        .from(steps)
        .where(and(eq(steps.jobId, id), eq(steps.state, "ready"))),
    ),
    runningWait: hot<{ id: number; attempt: number } | undefined>(store, "get", (db, { steps }) =>
      db
        .select({ id: steps.id, attempt: steps.attempt })
        .from(steps)
        .where(and(eq(steps.jobId, id), eq(steps.state, "running"), eq(steps.name, sql.placeholder("name")))),
    ),
    /**
     * PostgreSQL: lease the job's ready agent steps until their timeouts in one statement, with the job's row locked
     * first (as every writer of a job's steps does) and its state read in the same snapshot; with `hash` (else null),
     * only while that token is the job's live one. No rows when nothing is ready (then `job` says the state). Null on
     * SQLite, where the claim is a transaction of prepared statements.
     */
    claimAgentReady: pg
      ? hot<ClaimedStep[]>(store, "all", (db, { agentTokens, steps, jobs }) => {
          const locked = db.$with("locked").as(db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, id)).for("update"));
          const ofJob = (col: SQL) => sql`(select ${col} from ${jobs} where ${jobs.id} = ${steps.jobId})`;
          return db
            .with(locked)
            .update(steps)
            .set({
              state: "running",
              attempt: sql`${steps.attempt} + 1`,
              startedAt: sql`${now}::timestamptz`,
              leaseExpiresAt: plusSeconds(store.dialect, sql`${now}::timestamptz`, steps.timeoutS),
              nextAttemptAt: null,
            })
            .where(
              and(
                sql`${steps.jobId} = (select ${locked.id} from ${locked})`,
                eq(steps.state, "ready"),
                eq(steps.runner, "agent"),
                // With a token hash: only while it is the job's live token (a new lookup replaced it, the job closed).
                sql`(${sql.placeholder("hash")}::text is null or exists (select 1 from ${agentTokens} where ${agentTokens.jobId} = ${steps.jobId} and ${agentTokens.tokenHash} = ${sql.placeholder("hash")}::text and ${agentTokens.revokedAt} is null))`,
              ),
            )
            .returning({
              ...getTableColumns(steps),
              jobMachineId: sql<number>`${ofJob(sql`${jobs.machineId}`)}`.mapWith(Number),
              jobBatchId: sql<number | null>`${ofJob(sql`${jobs.batchId}`)}`,
              jobState: sql<string>`${ofJob(sql`${jobs.state}`)}`,
            });
        })
      : null,
    /** The job's token with this hash, if it is live (not revoked). */
    liveToken: hot<{ id: number } | undefined>(store, "get", (db, { agentTokens }) =>
      db
        .select({ id: agentTokens.id })
        .from(agentTokens)
        .where(and(eq(agentTokens.jobId, id), eq(agentTokens.tokenHash, sql.placeholder("hash")), isNull(agentTokens.revokedAt))),
    ),
    readyStep: hot<void>(store, "run", (db, { steps }) => db.update(steps).set({ state: "ready" }).where(eq(steps.id, id))),
    /** Lease a step to a runner (an agent, or a passive wait; a server step on SQLite) until its timeout. */
    claimStep: hot<StepRow>(store, "get", (db, { steps }) =>
      db
        .update(steps)
        .set({ state: "running", attempt: ph("attempt"), startedAt: ph("at"), leaseExpiresAt: ph("lease"), nextAttemptAt: null })
        .where(eq(steps.id, id))
        .returning(),
    ),
    succeedStep: hot<void>(store, "run", (db, { steps }) =>
      db
        .update(steps)
        .set({ state: "succeeded", leaseOwner: null, leaseExpiresAt: null, finishedAt: ph("at"), error: null, result: ph("result") })
        .where(eq(steps.id, id)),
    ),
    finishStep: hot<void>(store, "run", (db, { steps }) =>
      db
        .update(steps)
        .set(finishedValues)
        .where(eq(steps.id, id)),
    ),
  };
}
export type HotQueries = ReturnType<typeof prepareQueries>;
