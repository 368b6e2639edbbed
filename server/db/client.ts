import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { drizzle, type BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { migrationsFolder } from "./migrations";
import * as schema from "./schema";
import { cacheStatements } from "./statement-cache";

export { migrationsFolder };

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/**
 * Open (creating if needed) the SQLite database at `file`, set WAL mode and apply pending migrations.
 * WAL lets readers proceed while a writer commits; busy_timeout waits out short write locks instead of failing.
 */
export function openDatabase(file: string): Db {
  if (file !== ":memory:") restrictPermissions(file, "before");
  const sqlite = new Database(file);
  sqlite.pragma("journal_mode = WAL");
  // SQLite gives -wal and -shm the main file's mode; chmod them too for installations made before this was done.
  if (file !== ":memory:") restrictPermissions(file, "after");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 5000");
  sqlite.pragma("foreign_keys = ON");
  // IPv4 dotted quad -> 32-bit number, for sorting addresses numerically in SQL.
  sqlite.function("ip_num", { deterministic: true }, (ip: unknown) => {
    if (typeof ip !== "string") return null;
    const p = ip.split(".");
    return p.length === 4 ? ((+p[0]! * 256 + +p[1]!) * 256 + +p[2]!) * 256 + +p[3]! : null;
  });
  cacheStatements(sqlite);
  const db: Db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: migrationsFolder() });
  return db;
}

/**
 * The database holds password hashes, session hashes and sealed BMC secrets: owner-only. The data directory is
 * made 0700 (and an existing one tightened); the database is created 0600 (an empty file made first, since SQLite
 * creates with 0644 under the usual umask), and an existing file, WAL or SHM with group/other bits is set to 0600.
 */
function restrictPermissions(file: string, when: "before" | "after"): void {
  const dir = path.dirname(file);
  if (when === "before") {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    fs.closeSync(fs.openSync(file, "a", 0o600));
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    try {
      if (fs.statSync(f).mode & 0o077) fs.chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

/**
 * `Domain.db` of a process on PostgreSQL: there is no SQLite database, and any code still reading one synchronously
 * must fail loudly, naming itself in the stack, instead of reading an empty file. Every property access throws.
 */
export function noSqliteOnPostgres(): Db {
  return new Proxy({} as Db, {
    get(_t, prop) {
      if (prop === "then" || typeof prop === "symbol") return undefined;
      // Name the caller in the message: the entry point prints only the message of a start-up error.
      const caller = new Error().stack?.split("\n").slice(2).find((l) => !l.includes("db/client"))?.trim() ?? "?";
      throw new Error(`domain.db.${String(prop)}: this code reads SQLite synchronously and cannot run on PostgreSQL (convert it to the Store, server/db/store.ts); ${caller}`);
    },
  });
}
