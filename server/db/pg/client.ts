import pg from "pg";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import { migrationsFolder } from "../migrations";
import * as schema from "./schema";

export type PgDb = NodePgDatabase<typeof schema> & { $client: pg.Pool };

/** Advisory lock key (pg_advisory_lock(int, int)) under which one process at a time applies migrations. */
export const MIGRATION_LOCK: readonly [number, number] = [0x5241434b, 1]; // "RACK", 1

export interface PgOptions {
  /** Connections in this process's pool (node-postgres default 10). */
  max?: number;
  /** application_name shown in pg_stat_activity: which Rackhand process holds a connection. */
  applicationName?: string;
}

/**
 * Check a RACKHAND_DATABASE_URL before handing it to node-postgres: a postgres:// or postgresql:// URL with a
 * database name, nothing node-postgres would read as another protocol, and no control characters (an env file with
 * a CR or a stray newline). Returns the URL unchanged; throws with a message that never repeats the password.
 */
export function checkDatabaseUrl(url: string): string {
  if (url.length > 4096) throw new Error("RACKHAND_DATABASE_URL is longer than 4096 characters");
  if (/[\u0000-\u001f\u007f]/.test(url)) throw new Error("RACKHAND_DATABASE_URL contains a control character (newline, CR, NUL…)");
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("RACKHAND_DATABASE_URL is not a URL (expected postgres://user:password@host:5432/database)");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new Error(`RACKHAND_DATABASE_URL must start with postgres:// or postgresql:// (not ${u.protocol}//)`);
  }
  if (!u.pathname || u.pathname === "/") throw new Error("RACKHAND_DATABASE_URL names no database (…/database at the end)");
  if (!u.hostname && !u.searchParams.get("host")) throw new Error("RACKHAND_DATABASE_URL names no host (a host name, or ?host=/socket/dir)");
  return url;
}

/** host:port/database of a checked URL, for messages: no user name, no password. */
export function whereOf(url: string): string {
  const u = new URL(url);
  const host = u.hostname || u.searchParams.get("host") || "?";
  return `${host}${u.port ? `:${u.port}` : ""}${u.pathname}`;
}

/**
 * Connect to PostgreSQL through drizzle's node-postgres driver and apply pending migrations (drizzle-pg/). Several
 * processes may start at once: migrations run under an advisory lock, so one applies them and the others find them
 * applied (drizzle's migrator takes no lock of its own).
 */
export async function openPgDatabase(url: string, opts: PgOptions = {}): Promise<PgDb> {
  const pool = createPgPool(url, opts);
  try {
    await migratePg(pool);
  } catch (err) {
    await pool.end();
    const e = err as Error & { code?: string };
    // The server's start fails here when the database is unreachable or refuses: say where, never with the password.
    throw Object.assign(new Error(`PostgreSQL at ${whereOf(url)} (RACKHAND_DATABASE_URL): ${e.message.replaceAll(url, "<url>")}`, { cause: err }), { code: e.code });
  }
  return drizzle<typeof schema, pg.Pool>(pool, { schema });
}

/**
 * A node-postgres pool that survives a PostgreSQL restart or failover. A client that loses its connection emits
 * 'error': on the pool when idle, on itself when checked out (a LISTEN connection such as socket.io's adapter
 * holds, a query in flight). Without a listener either would end the process. The query in flight fails with its
 * own error, the pool drops the client and opens a new one on the next query, and a LISTEN holder sees 'end'.
 */
export function createPgPool(url: string, opts: PgOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: checkDatabaseUrl(url),
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "rackhand",
  });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** Apply drizzle-pg/ migrations, one process at a time, on one connection (a pool of one is enough). */
export async function migratePg(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  let failed: Error | undefined;
  // A checked-out client that loses its connection emits 'error' on itself, not on the pool.
  const onError = (err: Error) => (failed = err);
  client.on("error", onError);
  try {
    await client.query("SELECT pg_advisory_lock($1, $2)", [...MIGRATION_LOCK]);
    try {
      await migrate(drizzle(client), { migrationsFolder: migrationsFolder("drizzle-pg") });
    } finally {
      await client.query("SELECT pg_advisory_unlock($1, $2)", [...MIGRATION_LOCK]);
    }
  } finally {
    client.off("error", onError);
    client.release(failed);
  }
}
