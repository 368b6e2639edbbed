import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { machines } from "./machines";

export const batches = sqliteTable("batches", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  kind: text("kind").notNull(),
  concurrency: integer("concurrency").notNull().default(10),
  /** Percentage of failed jobs after which the batch pauses and alerts. */
  failureThreshold: integer("failure_threshold_pct").notNull().default(20),
  state: text("state").notNull().default("running"),
  params: text("params", { mode: "json" }).$type<Record<string, unknown>>(),
  createdBy: text("created_by"),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
});

export const jobs = sqliteTable(
  "jobs",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    batchId: integer("batch_id").references(() => batches.id, { onDelete: "set null" }),
    kind: text("kind").notNull(),
    state: text("state").notNull().default("pending"),
    attempt: integer("attempt").notNull().default(0),
    params: text("params", { mode: "json" }).$type<Record<string, unknown>>(),
    error: text("error"),
    /** When the machine's agent last looked up this job (satisfies wait_agent steps). */
    agentSeenAt: integer("agent_seen_at", { mode: "timestamp_ms" }),
    /** When the machine's installer reported completion during this job (satisfies wait_install steps). */
    installDoneAt: integer("install_done_at", { mode: "timestamp_ms" }),
    createdBy: text("created_by"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    index("jobs_machine").on(t.machineId, t.id),
    index("jobs_batch").on(t.batchId),
    index("jobs_state").on(t.state),
    // One active job per machine, enforced by the database as well as by the code.
    uniqueIndex("jobs_one_active").on(t.machineId).where(sql`${t.state} IN ('queued', 'running')`),
  ],
);

export const steps = sqliteTable(
  "steps",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: integer("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    /** Steps with the same group run in parallel; groups run in ascending order. */
    group: integer("group").notNull(),
    name: text("name").notNull(),
    runner: text("runner").$type<"server" | "agent">().notNull(),
    params: text("params", { mode: "json" }).$type<Record<string, unknown>>(),
    state: text("state").notNull().default("pending"),
    attempt: integer("attempt").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(3),
    timeoutS: integer("timeout_s").notNull().default(600),
    /** Retry policy for transient errors: exponential backoff from base to max, with jitter. */
    backoffBaseMs: integer("backoff_base_ms").notNull().default(2000),
    backoffMaxMs: integer("backoff_max_ms").notNull().default(60000),
    /** A pending step waiting out its backoff runs no earlier than this. */
    nextAttemptAt: integer("next_attempt_at", { mode: "timestamp_ms" }),
    leaseExpiresAt: integer("lease_expires_at", { mode: "timestamp_ms" }),
    /** The process holding a server step's lease when several share PostgreSQL (server/db/pg/leases.ts); null on SQLite. */
    leaseOwner: text("lease_owner"),
    result: text("result", { mode: "json" }).$type<Record<string, unknown>>(),
    error: text("error"),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [index("steps_job").on(t.jobId, t.group), index("steps_state").on(t.state)],
);

export const logLines = sqliteTable(
  "log_lines",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: integer("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    stepId: integer("step_id").references(() => steps.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    ts: integer("ts", { mode: "timestamp_ms" }).notNull(),
    stream: text("stream").notNull().default("stdout"),
    text: text("text").notNull(),
  },
  (t) => [uniqueIndex("log_lines_job_seq").on(t.jobId, t.seq)],
);

export const agentTokens = sqliteTable("agent_tokens", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  jobId: integer("job_id")
    .notNull()
    .unique()
    .references(() => jobs.id, { onDelete: "cascade" }),
  machineId: integer("machine_id")
    .notNull()
    .references(() => machines.id, { onDelete: "cascade" }),
  /** sha256 of the token; the token itself is shown to the agent once. */
  tokenHash: text("token_hash").notNull().unique(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
});
