/**
 * Two processes appending to one job's log at once (the installer syslog received by one, the package proxy's errors
 * by another), on one PostgreSQL: the job's row lock makes them take turns, so every line gets its own seq and the
 * seqs are contiguous (without the lock both read the same last seq and one insert fails on (job_id, seq)).
 */
import { asc, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Domain } from "../context";
import type { PgDb } from "../db/pg/client";
import * as pgSchema from "../db/pg/schema";
import { pgStore } from "../db/store";
import { EventBus } from "../events/bus";
import { enrollMachine } from "../machines/enroll";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { appendJobLines } from "./job-lines";

let h: Harness;
let pool: pg.Pool;
let other: Domain;

beforeAll(async () => {
  h = createHarness();
  await h.store.db.execute(sql`SELECT 1`);
  pool = new pg.Pool({ connectionString: (h.store.db as unknown as PgDb).$client.options.connectionString, max: 4 });
  other = { ...h.domain, store: pgStore(drizzle<typeof pgSchema, pg.Pool>(pool, { schema: pgSchema })), bus: new EventBus() };
});
afterAll(async () => {
  await pool?.end();
  h.close();
});

describe("job lines from two processes", () => {
  it("get distinct, contiguous seqs when appended at once", async () => {
    const { id: machineId } = await enrollMachine(h.domain, machineInput(1) as never, "test");
    const { jobs, logLines } = h.store.t;
    const [job] = await h.store.db.insert(jobs).values({ machineId, kind: "deploy_installer", state: "running", createdAt: new Date(), startedAt: new Date() }).returning({ id: jobs.id });
    const jobId = job!.id;
    const batch = (who: string, i: number) => [0, 1].map((k) => ({ ts: i, stream: "installer", text: `${who} ${i}.${k}` }));
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => appendJobLines(i % 2 ? other : h.domain, jobId, machineId, batch(i % 2 ? "b" : "a", i))));
    expect(results.every((r) => r.length === 2)).toBe(true);
    const rows = await h.store.db.select({ seq: logLines.seq, text: logLines.text }).from(logLines).where(eq(logLines.jobId, jobId)).orderBy(asc(logLines.seq));
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(new Set(rows.map((r) => r.text)).size).toBe(80);
    // Each call's two lines are consecutive: one call's transaction is never interleaved with another's.
    for (const r of results) expect(r[1]!.seq).toBe(r[0]!.seq + 1);
  });
});
