import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { bigId, id, ts } from "./columns";
import { machines } from "./machines";

export const batches = pgTable("batches", {
  id: id(),
  kind: text("kind").notNull(),
  concurrency: integer("concurrency").notNull().default(10),
  failureThreshold: integer("failure_threshold_pct").notNull().default(20),
  state: text("state").notNull().default("running"),
  params: jsonb("params").$type<Record<string, unknown>>(),
  createdBy: text("created_by"),
  createdAt: ts("created_at").notNull(),
  finishedAt: ts("finished_at"),
});

export const jobs = pgTable(
  "jobs",
  {
    id: id(),
    machineId: integer("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    batchId: integer("batch_id").references(() => batches.id, { onDelete: "set null" }),
    kind: text("kind").notNull(),
    state: text("state").notNull().default("pending"),
    attempt: integer("attempt").notNull().default(0),
    params: jsonb("params").$type<Record<string, unknown>>(),
    error: text("error"),
    agentSeenAt: ts("agent_seen_at"),
    installDoneAt: ts("install_done_at"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull(),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    index("jobs_machine").on(t.machineId, t.id),
    index("jobs_batch").on(t.batchId),
    index("jobs_state").on(t.state),
    uniqueIndex("jobs_one_active").on(t.machineId).where(sql`${t.state} IN ('queued', 'running')`),
  ],
);

export const steps = pgTable(
  "steps",
  {
    id: id(),
    jobId: integer("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    group: integer("group").notNull(),
    name: text("name").notNull(),
    runner: text("runner").$type<"server" | "agent">().notNull(),
    params: jsonb("params").$type<Record<string, unknown>>(),
    state: text("state").notNull().default("pending"),
    attempt: integer("attempt").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(3),
    timeoutS: integer("timeout_s").notNull().default(600),
    backoffBaseMs: integer("backoff_base_ms").notNull().default(2000),
    backoffMaxMs: integer("backoff_max_ms").notNull().default(60000),
    nextAttemptAt: ts("next_attempt_at"),
    leaseExpiresAt: ts("lease_expires_at"),
    leaseOwner: text("lease_owner"),
    result: jsonb("result").$type<Record<string, unknown>>(),
    error: text("error"),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
  },
  (t) => [index("steps_job").on(t.jobId, t.group), index("steps_state").on(t.state)],
);

export const logLines = pgTable(
  "log_lines",
  {
    id: bigId(),
    jobId: integer("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    stepId: integer("step_id").references(() => steps.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    ts: ts("ts").notNull(),
    stream: text("stream").notNull().default("stdout"),
    text: text("text").notNull(),
  },
  (t) => [uniqueIndex("log_lines_job_seq").on(t.jobId, t.seq)],
);

export const agentTokens = pgTable("agent_tokens", {
  id: id(),
  jobId: integer("job_id")
    .notNull()
    .unique()
    .references(() => jobs.id, { onDelete: "cascade" }),
  machineId: integer("machine_id")
    .notNull()
    .references(() => machines.id, { onDelete: "cascade" }),
  tokenHash: text("token_hash").notNull().unique(),
  createdAt: ts("created_at").notNull(),
  revokedAt: ts("revoked_at"),
});
