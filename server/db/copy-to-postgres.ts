/**
 * `rackhand db copy-to-postgres`: copy an existing SQLite installation into an empty PostgreSQL database
 * (docs/SCALE-OUT.md, "Migrating from SQLite").
 *
 * - The SQLite file is opened read-only and read inside one read transaction (a consistent snapshot, even if a
 *   server still had it open; stop the server first anyway, or later writes are not copied). It must carry every
 *   migration of this version: start this version of Rackhand on it once first.
 * - The target gets the drizzle-pg/ migrations, must then hold no row in any Rackhand table, and receives
 *   everything in one PostgreSQL transaction: a failure leaves it empty.
 * - Tables go in foreign-key order (parents first; rows of a table that references itself in id order). Values are
 *   converted by the PostgreSQL column: epoch milliseconds → timestamptz, 0/1 → boolean, JSON text → jsonb
 *   (checked), the rest as is. Ids are kept, then every identity sequence is moved past the largest id.
 * - Messages name the target with its password replaced by `***`.
 */
import fs from "node:fs";
import Database from "better-sqlite3";
import { getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core";
import { is, Table } from "drizzle-orm";
import pg from "pg";
import { migrationsFolder } from "./migrations";
import { checkDatabaseUrl, createPgPool, migratePg } from "./pg/client";
import * as pgSchema from "./pg/schema";

export interface CopyResult {
  tables: { name: string; rows: number }[];
  ms: number;
}

export class CopyError extends Error {}

/** The URL with its password (and a `password` query parameter) replaced by `***`, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    if (u.searchParams.has("password")) u.searchParams.set("password", "***");
    return u.toString();
  } catch {
    return "(the database URL)";
  }
}

/** Rackhand's PostgreSQL tables, parents before the tables that reference them. */
export function tablesInForeignKeyOrder(): PgTable[] {
  const tables = (Object.values(pgSchema) as unknown[]).filter((v): v is PgTable => is(v, Table));
  const byName = new Map(tables.map((t) => [getTableConfig(t).name, t]));
  const deps = new Map(
    tables.map((t) => {
      const cfg = getTableConfig(t);
      const parents = cfg.foreignKeys.map((fk) => getTableConfig(fk.reference().foreignTable).name).filter((p) => p !== cfg.name);
      return [cfg.name, new Set(parents)];
    }),
  );
  const out: PgTable[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    if (visiting.has(name)) throw new Error(`foreign keys form a cycle through ${name}`);
    visiting.add(name);
    for (const p of [...deps.get(name)!].sort()) visit(p);
    visiting.delete(name);
    done.add(name);
    out.push(byName.get(name)!);
  };
  for (const name of [...byName.keys()].sort()) visit(name);
  return out;
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

type Convert = (v: unknown, where: () => string) => unknown;

/** How a SQLite value becomes the parameter for this PostgreSQL column. */
function converterFor(c: PgColumn): Convert {
  const sqlType = c.getSQLType();
  if (sqlType.startsWith("timestamp")) {
    return (v, where) => {
      if (v === null) return null;
      if (typeof v !== "number" && typeof v !== "bigint") throw new CopyError(`${where()}: expected epoch milliseconds, found ${typeof v}`);
      const d = new Date(Number(v));
      if (Number.isNaN(d.getTime())) throw new CopyError(`${where()}: ${String(v)} is not a time`);
      return d;
    };
  }
  if (sqlType === "boolean") {
    return (v, where) => {
      if (v === null) return null;
      if (v === 0 || v === 1 || v === 0n || v === 1n) return Number(v) === 1;
      throw new CopyError(`${where()}: expected 0 or 1 for a boolean, found ${JSON.stringify(v)}`);
    };
  }
  if (sqlType === "jsonb" || sqlType === "json") {
    return (v, where) => {
      if (v === null) return null;
      if (typeof v !== "string") throw new CopyError(`${where()}: expected JSON text, found ${typeof v}`);
      try {
        JSON.parse(v);
      } catch {
        throw new CopyError(`${where()}: not valid JSON`);
      }
      // PostgreSQL's jsonb cannot hold U+0000 in a string.
      if (/\\u0000/i.test(v)) throw new CopyError(`${where()}: JSON with a NUL character (\\u0000), which PostgreSQL's jsonb cannot store`);
      return v; // sent as text, parsed by PostgreSQL (node-postgres would turn a JS array into a PostgreSQL array)
    };
  }
  return (v, where) => {
    if (typeof v === "string" && v.includes("\u0000")) throw new CopyError(`${where()}: text with a NUL character, which PostgreSQL cannot store`);
    if (Buffer.isBuffer(v)) throw new CopyError(`${where()}: unexpected binary value`);
    return typeof v === "bigint" ? v.toString() : v;
  };
}

/** Rows sent per INSERT (PostgreSQL takes at most 65,535 parameters per statement). */
const batchRows = (cols: number) => Math.max(1, Math.min(1000, Math.floor(60_000 / cols)));

export async function copyToPostgres(opts: { sqliteFile: string; url: string; log?: (s: string) => void }): Promise<CopyResult> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const target = redactUrl(opts.url);
  try {
    checkDatabaseUrl(opts.url);
  } catch (err) {
    throw new CopyError((err as Error).message.replace("RACKHAND_DATABASE_URL", "the target URL"));
  }
  if (!fs.existsSync(opts.sqliteFile)) throw new CopyError(`${opts.sqliteFile}: no such file (the SQLite database is rackhand.db in the data directory)`);

  let lite: Database.Database;
  try {
    lite = new Database(opts.sqliteFile, { readonly: true, fileMustExist: true });
    lite.pragma("busy_timeout = 5000");
    lite.defaultSafeIntegers(false);
  } catch (err) {
    throw new CopyError(`${opts.sqliteFile}: cannot open as SQLite: ${(err as Error).message}`);
  }
  const pool = createPgPool(opts.url, { max: 1, applicationName: "rackhand-copy" });
  try {
    checkSqliteMigrations(lite, opts.sqliteFile);
    try {
      await migratePg(pool);
    } catch (err) {
      throw new CopyError(`cannot prepare ${target}: ${(err as Error).message}`);
    }
    const tables = tablesInForeignKeyOrder();
    const client = await pool.connect();
    const result: CopyResult["tables"] = [];
    try {
      const nonEmpty: string[] = [];
      for (const t of tables) {
        const name = getTableConfig(t).name;
        const r = await client.query<{ x: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteIdent(name)}) AS x`);
        if (r.rows[0]!.x) nonEmpty.push(name);
      }
      if (nonEmpty.length) throw new CopyError(`${target} is not empty (rows in ${nonEmpty.join(", ")}): copy only into a new, empty database`);

      lite.prepare("BEGIN").run(); // one read snapshot of the SQLite file
      await client.query("BEGIN");
      try {
        for (const t of tables) result.push(await copyTable(lite, client, t, log));
        for (const t of tables) await resetIdentity(client, t);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      } finally {
        if (lite.inTransaction) lite.prepare("COMMIT").run();
      }
    } finally {
      client.release();
    }
    return { tables: result, ms: Date.now() - started };
  } catch (err) {
    if (err instanceof CopyError) throw err;
    const msg = (err as Error).message ?? String(err);
    throw new CopyError(`copy into ${target} failed, nothing was written: ${msg.split(opts.url).join(target)}`);
  } finally {
    lite.close();
    await pool.end();
  }
}

/** The SQLite file must be at this version's schema (the column lists below come from it). */
function checkSqliteMigrations(lite: Database.Database, file: string): void {
  const journal = JSON.parse(fs.readFileSync(`${migrationsFolder()}/meta/_journal.json`, "utf8")) as { entries: unknown[] };
  let applied = 0;
  try {
    applied = (lite.prepare("SELECT count(*) AS n FROM __drizzle_migrations").get() as { n: number }).n;
  } catch {
    throw new CopyError(`${file} is not a Rackhand database (no migrations table)`);
  }
  if (applied !== journal.entries.length) {
    throw new CopyError(
      `${file} has ${applied} of this version's ${journal.entries.length} schema migrations: start this version of Rackhand on it once (it migrates at start), stop it, then copy`,
    );
  }
}

async function copyTable(lite: Database.Database, client: pg.PoolClient, t: PgTable, log: (s: string) => void): Promise<{ name: string; rows: number }> {
  const cfg = getTableConfig(t);
  const cols = cfg.columns;
  const liteCols = new Set((lite.prepare(`SELECT name FROM pragma_table_info(?)`).all(cfg.name) as { name: string }[]).map((r) => r.name));
  if (liteCols.size === 0) throw new CopyError(`the SQLite database has no table ${cfg.name}`);
  const missing = cols.filter((c) => !liteCols.has(c.name)).map((c) => c.name);
  if (missing.length) throw new CopyError(`the SQLite table ${cfg.name} lacks ${missing.join(", ")}`);
  const convert = cols.map(converterFor);
  const pk = cfg.primaryKeys[0]?.columns.map((c) => c.name) ?? cols.filter((c) => c.primary).map((c) => c.name);
  const order = pk.length ? ` ORDER BY ${pk.map(quoteIdent).join(", ")}` : "";
  const select = lite.prepare(`SELECT ${cols.map((c) => quoteIdent(c.name)).join(", ")} FROM ${quoteIdent(cfg.name)}${order}`).raw(true);
  const per = batchRows(cols.length);
  const insertHead = `INSERT INTO ${quoteIdent(cfg.name)} (${cols.map((c) => quoteIdent(c.name)).join(", ")}) OVERRIDING SYSTEM VALUE VALUES `;
  let batch: unknown[][] = [];
  let rows = 0;
  const flush = async () => {
    if (!batch.length) return;
    const params: unknown[] = [];
    const tuples = batch.map((r) => `(${r.map((v) => (params.push(v), `$${params.length}`)).join(", ")})`);
    await client.query(insertHead + tuples.join(", "), params);
    rows += batch.length;
    batch = [];
  };
  // The iterator keeps the SQLite statement open; nothing else uses that connection meanwhile.
  const pending: unknown[][] = [];
  for (const raw of select.iterate() as Iterable<unknown[]>) {
    const keyOf = () => pk.map((k) => `${k}=${String(raw[cols.findIndex((c) => c.name === k)])}`).join(",");
    pending.push(raw.map((v, i) => convert[i]!(v, () => `${cfg.name}.${cols[i]!.name} (row ${keyOf() || rows + pending.length})`)));
    if (pending.length >= per) {
      batch = pending.splice(0);
      await flush();
    }
  }
  batch = pending.splice(0);
  await flush();
  log(`${cfg.name}: ${rows} rows`);
  return { name: cfg.name, rows };
}

/** Move each identity sequence past the copied ids (kept as they were), so new rows do not collide. */
async function resetIdentity(client: pg.PoolClient, t: PgTable): Promise<void> {
  const cfg = getTableConfig(t);
  for (const c of cfg.columns) {
    if (!(c as unknown as { generatedIdentity?: unknown }).generatedIdentity) continue;
    const table = quoteIdent(cfg.name);
    const col = quoteIdent(c.name);
    await client.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT max(${col}) FROM ${table}), 1), (SELECT max(${col}) FROM ${table}) IS NOT NULL)`,
      [table, c.name],
    );
  }
}
