/** `rackhand db copy-to-postgres` against a real PostgreSQL: the demo lab plus hostile values, copied and compared row by row. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { asc, getTableColumns, is, Table } from "drizzle-orm";
import { getTableConfig as pgConfig, type PgTable } from "drizzle-orm/pg-core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dbMain } from "../../cli/db";
import { seedDemoLab } from "../demo/seed";
import { createHarness, type Harness } from "../testing/harness";
import { startPgCluster, type PgCluster } from "../testing/pg-cluster";
import { openDatabase } from "./client";
import { tablesInForeignKeyOrder } from "./copy-to-postgres";
import { openPgDatabase, type PgDb } from "./pg/client";
import * as pgSchema from "./pg/schema";
import * as liteSchema from "./schema";
import { events, osProfiles, racks, users } from "./schema";

const PASSWORD = "s3cret-Pa55-never-printed";
let cluster: PgCluster;
let h: Harness;
beforeAll(async () => {
  cluster = await startPgCluster();
  h = createHarness();
  await seedDemoLab(h.domain);
  // Hostile values: quotes, backslashes, SQL, shell, NUL-free non-ASCII, newlines, JSON with the same.
  const hostile = ["O'Brien \"rack\"", "back\\slash\\", "'; DROP TABLE racks; --", "$(reboot) & ; ..", "Ünïcødé 机架 🚀", "line1\nline2\r\n", "x".repeat(2000)];
  const now = new Date();
  for (const [i, name] of hostile.entries()) h.db.insert(racks).values({ name, site: `site ${name}`, createdAt: new Date(now.getTime() + i), updatedAt: now }).run();
  h.db
    .insert(events)
    .values(hostile.map((m) => ({ ts: now, actor: `user:${m}`, kind: "test.hostile", message: m, payload: { m, nested: { q: "\"'\\", list: [m, 1, null, true] }, "key with 'quote'": m } })))
    .run();
  h.db
    .insert(osProfiles)
    .values({ name: "hostile profile ü \\ '", kind: "image", options: { list: [1, "two", { three: "3\\\"" }], emptyObj: {}, emptyList: [] }, createdAt: now, updatedAt: now } as never)
    .run();
  await h.addUser("zoë'\\\"", "viewer", "hostile-user-pw-1");
  h.db.$client.pragma("wal_checkpoint(TRUNCATE)");
}, 120_000);
afterAll(async () => {
  h?.close();
  await cluster?.stop();
});

/** The cluster's URL for `db`, with a password in it (trust authentication ignores it; it must never be printed). */
const urlWithPassword = (dbUrl: string) => dbUrl.replace("postgres://postgres@", `postgres://postgres:${PASSWORD}@`);

async function runCli(args: string[], env: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await dbMain(args, { out: (s) => out.push(s), err: (s) => err.push(s), env: env as NodeJS.ProcessEnv });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** Every table's rows, through drizzle on each side (Date, boolean and JSON decoded), ordered by primary key. */
async function allRows(pgDb: PgDb) {
  const out: Record<string, { lite: unknown[]; pg: unknown[] }> = {};
  for (const [key, t] of Object.entries(pgSchema)) {
    if (!is(t, Table)) continue;
    const lt = (liteSchema as Record<string, unknown>)[key] as typeof liteSchema.racks;
    const cfg = pgConfig(t as PgTable);
    const pkCols = cfg.primaryKeys[0]?.columns.map((c) => c.name) ?? cfg.columns.filter((c) => c.primary).map((c) => c.name);
    const byName = (cols: Record<string, unknown>) => pkCols.map((n) => Object.values(cols).find((c) => (c as { name: string }).name === n)) as never[];
    const liteRows = h.db.select().from(lt).orderBy(...byName(getTableColumns(lt)).map((c) => asc(c))).all();
    const pgRows = await pgDb.select().from(t as typeof pgSchema.racks).orderBy(...byName(getTableColumns(t as PgTable)).map((c) => asc(c)));
    out[cfg.name] = { lite: liteRows, pg: pgRows };
  }
  return out;
}

describe("rackhand db copy-to-postgres", () => {
  let target: string;
  let pgDb: PgDb;
  let first: Awaited<ReturnType<typeof runCli>>;
  beforeAll(async () => {
    target = await cluster.createDatabase("copy_target");
    first = await runCli(["copy-to-postgres", "--data-dir", h.dataDir], { RACKHAND_DATABASE_URL: urlWithPassword(target) });
    pgDb = await openPgDatabase(target, { max: 2 });
  }, 60_000);
  afterAll(async () => {
    await pgDb?.$client.end();
  });

  it("copies every table: same row counts and the same rows, value for value", async () => {
    expect(first.err).toBe("");
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^Copied \d+ rows in 2\d tables from .*rackhand\.db to postgres:\/\/postgres:\*\*\*@localhost\/copy_target/m);
    const rows = await allRows(pgDb);
    expect(Object.keys(rows).length).toBe(tablesInForeignKeyOrder().length);
    for (const [name, { lite, pg: p }] of Object.entries(rows)) {
      expect(p.length, name).toBe(lite.length);
      expect(p, name).toEqual(lite);
    }
    // The demo lab and the hostile values were really there to copy.
    expect(rows.machines!.pg.length).toBe(36);
    expect(rows.racks!.pg.map((r) => (r as { name: string }).name)).toContain("'; DROP TABLE racks; --");
    expect(rows.events!.pg.find((e) => (e as { message: string }).message === "back\\slash\\")).toMatchObject({
      payload: { m: "back\\slash\\", nested: { q: "\"'\\", list: ["back\\slash\\", 1, null, true] } },
    });
    expect(rows.users!.pg.map((u) => (u as { name: string }).name)).toContain("zoë'\\\"");
  });

  it("stores JSON as jsonb and times as timestamptz, and moves identity sequences past the copied ids", async () => {
    const c = new pg.Client({ connectionString: target });
    await c.connect();
    try {
      const types = await c.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE (table_name, column_name) IN (('events','payload'),('events','ts'),('machines','maintenance'))",
      );
      expect(Object.fromEntries(types.rows.map((r) => [`${r.table_name}.${r.column_name}`, r.data_type]))).toEqual({
        "events.payload": "jsonb",
        "events.ts": "timestamp with time zone",
        "machines.maintenance": "boolean",
      });
      expect((await c.query("SELECT payload->'nested'->>'q' AS q FROM events WHERE message = $1", ["Ünïcødé 机架 🚀"])).rows[0].q).toBe("\"'\\");
    } finally {
      await c.end();
    }
    const maxRack = Math.max(...h.db.select({ id: racks.id }).from(racks).all().map((r) => r.id));
    const [fresh] = await pgDb.insert(pgSchema.racks).values({ name: "after the copy", createdAt: new Date(), updatedAt: new Date() }).returning();
    expect(fresh!.id).toBe(maxRack + 1);
    const maxEvent = Math.max(...h.db.select({ id: events.id }).from(events).all().map((r) => r.id));
    const [ev] = await pgDb.insert(pgSchema.events).values({ ts: new Date(), actor: "t", kind: "t", message: "after" }).returning();
    expect(ev!.id).toBe(maxEvent + 1);
  });

  it("refuses a target that is not empty, naming the tables, never the password", async () => {
    const again = await runCli(["copy-to-postgres", "--from", path.join(h.dataDir, "rackhand.db"), "--to", urlWithPassword(target)], {});
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/is not empty \(rows in .*racks.*\): copy only into a new, empty database/);
    expect(again.err + again.out).not.toContain(PASSWORD);
    expect(first.out).not.toContain(PASSWORD);
  });
});

describe("copy-to-postgres refusals", () => {
  it("a NUL in a text value: a clear error naming table, column and row; the target stays empty", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-copy-nul-"));
    try {
      const db = openDatabase(path.join(dir, "rackhand.db"));
      db.insert(racks).values({ name: "fine", createdAt: new Date(), updatedAt: new Date() }).run();
      db.insert(users).values({ name: "before-the-bad-rack", role: "viewer", passwordHash: "x", createdAt: new Date() }).run();
      db.insert(racks).values({ name: "bad\u0000name", createdAt: new Date(), updatedAt: new Date() }).run();
      db.$client.close();
      const target = await cluster.createDatabase("copy_nul");
      const r = await runCli(["copy-to-postgres", "--data-dir", dir], { RACKHAND_DATABASE_URL: urlWithPassword(target) });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/racks\.name \(row id=2\): text with a NUL character/);
      expect(r.err).not.toContain(PASSWORD);
      const c = new pg.Client({ connectionString: target });
      await c.connect();
      try {
        expect((await c.query("SELECT (SELECT count(*) FROM racks)::int + (SELECT count(*) FROM users)::int AS n")).rows[0].n).toBe(0);
      } finally {
        await c.end();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses what is not a Rackhand SQLite database, a missing file, a URL that is not PostgreSQL, and missing arguments", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-copy-bad-"));
    try {
      const other = path.join(dir, "other.db");
      const { default: Database } = await import("better-sqlite3");
      new Database(other).exec("CREATE TABLE t (x)");
      const target = await cluster.createDatabase("copy_refusals");
      const env = { RACKHAND_DATABASE_URL: urlWithPassword(target) };
      expect((await runCli(["copy-to-postgres", "--from", other], env)).err).toMatch(/is not a Rackhand database/);
      expect((await runCli(["copy-to-postgres", "--from", path.join(dir, "missing.db")], env)).err).toMatch(/missing\.db: no such file/);
      const mysql = await runCli(["copy-to-postgres", "--from", other, "--to", `mysql://root:${PASSWORD}@localhost/x`], {});
      expect(mysql.err).toMatch(/must start with postgres:\/\//);
      expect(mysql.err).not.toContain(PASSWORD);
      expect((await runCli(["copy-to-postgres"], {})).code).toBe(2);
      expect((await runCli(["copy-to-postgres", "--from", other], {})).err).toMatch(/RACKHAND_DATABASE_URL/);
      expect((await runCli(["copy-to-postgres", "--from", other, "--data-dir", dir], env)).err).toMatch(/not both/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
