import path from "node:path";
import { PgTransaction } from "drizzle-orm/pg-core";
import { inArray, sql } from "drizzle-orm";
import { openDatabase, type Db } from "./client";
import { openPgDatabase, type PgDb, type PgOptions } from "./pg/client";
import * as pgSchema from "./pg/schema";
import * as liteSchema from "./schema";

/**
 * The Store: one async query surface over either database (docs/ARCHITECTURE.md, "PostgreSQL").
 *
 * - `db` and the `tx` a transaction callback gets are typed as drizzle's PostgreSQL database, and `t` as the
 *   PostgreSQL tables. On SQLite they are the better-sqlite3 drizzle database and the SQLite tables: their row types
 *   are equal (checked by server/db/pg/parity.test.ts), and the builders domain code may use (select, insert, update,
 *   delete, `returning`, `onConflictDoUpdate`/`DoNothing`, `limit`, awaited) behave alike. The casts live here only.
 * - Dialect SQL (raw fragments, `FOR UPDATE`, `ILIKE`…) goes through server/db/sql.ts.
 * - Queries are awaited, never `.all()`/`.get()`/`.run()`.
 */
export type Dialect = "sqlite" | "postgres";
export type Tables = typeof pgSchema;
/** The query surface outside a transaction. */
export type StoreDb = Omit<PgDb, "$client" | "transaction">;
/** The query surface inside `Store.transaction`. */
export type StoreTx = Omit<Parameters<Parameters<PgDb["transaction"]>[0]>[0], "transaction">;

export interface TransactionOptions {
  /** PostgreSQL isolation level (default READ COMMITTED). SQLite transactions are always serializable. */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** Attempts on a deadlock or serialization failure (PostgreSQL 40P01/40001); default 5. */
  attempts?: number;
}

export interface Store {
  readonly dialect: Dialect;
  readonly db: StoreDb;
  readonly t: Tables;
  /**
   * Run `fn` in one transaction: committed when it resolves, rolled back when it throws (the error is rethrown).
   * - SQLite: `BEGIN IMMEDIATE … COMMIT` under an in-process async mutex; queries through `store.db` wait until
   *   the transaction ends, so no query of another caller runs inside it. Only database work inside `fn`: no
   *   BMC, HTTP or file I/O, and no query through `store.db` (it would wait for this very transaction).
   * - PostgreSQL: a pooled connection, READ COMMITTED unless asked; check-then-act code locks its rows first
   *   (`lockMachines`, `forUpdate` in sql.ts). Deadlocks and serialization failures are retried with backoff, so
   *   `fn` may run more than once and must have no effect outside the database.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}

/** An async mutex: `lock()` resolves with the release function once every earlier holder has released. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  get locked(): boolean {
    return this.holders > 0;
  }

  async lock(): Promise<() => void> {
    const before = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    this.holders++;
    await before;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.holders--;
      release();
    };
  }

  /** Resolves when no one holds or waits for the mutex (at the time the last waiter releases). */
  async idle(): Promise<void> {
    while (this.holders > 0) await this.tail;
  }
}

const SYNC_METHODS = new Set(["all", "get", "run", "values"]);

/**
 * The SQLite `store.db`: every query builder it hands out runs only when no Store transaction is open. A query
 * executes synchronously when awaited (better-sqlite3), so checking the mutex right then is enough.
 */
function gatedDb<T extends object>(target: T, mutex: Mutex): T {
  const proxies = new WeakMap<object, object>();
  const wrap = <O extends object>(obj: O): O => {
    let p = proxies.get(obj) as O | undefined;
    if (p) return p;
    p = new Proxy(obj, {
      get(o, prop) {
        const v = Reflect.get(o, prop, o) as unknown;
        if (typeof v !== "function") return v;
        if (prop === "then") {
          return (onOk?: (x: unknown) => unknown, onErr?: (e: unknown) => unknown) => {
            const run = (): Promise<unknown> => (mutex.locked ? mutex.idle().then(run) : (v as (...a: unknown[]) => Promise<unknown>).call(o));
            return run().then(onOk, onErr);
          };
        }
        // `.values(rows)` of an insert builds; `.values()` of a select runs (raw rows).
        if (typeof prop === "string" && SYNC_METHODS.has(prop) && (prop !== "values" || o.constructor.name.includes("Select"))) {
          return (...args: unknown[]) => {
            if (mutex.locked) throw new Error(`store.db: synchronous .${prop}() while a Store transaction is open; await the query instead`);
            return (v as (...a: unknown[]) => unknown).apply(o, args);
          };
        }
        return (...args: unknown[]) => {
          const r = (v as (...a: unknown[]) => unknown).apply(o, args);
          if (r === o) return p;
          return r !== null && typeof r === "object" && !(r instanceof Promise) ? wrap(r) : r;
        };
      },
    });
    proxies.set(obj, p);
    return p;
  };
  return wrap(target);
}

const sqliteStores = new WeakMap<Db, Store>();
const rawOf = new WeakMap<Store, { db: Db; mutex: Mutex }>();

/**
 * The synchronous better-sqlite3 database under a SQLite Store (the connection its transactions run on), for
 * statements prepared once on it (hot paths: server/orchestrator/orchestrator-queries.ts). Such statements bypass the
 * gate of `store.db`: run them only inside a Store transaction, or as a single statement outside one.
 * @throws Error for a PostgreSQL Store
 */
export function sqliteDbOf(store: Store): Db {
  const raw = rawOf.get(store);
  if (!raw) throw new Error("not a SQLite store");
  return raw.db;
}

/**
 * For a statement prepared on `sqliteDbOf(store)` about to run outside a transaction (`db` is not the transaction's
 * handle): resolves once no Store transaction is open, as an awaited `store.db` query waits. Null when it may run now.
 */
export function sqliteWait(store: Store, db: unknown): Promise<void> | null {
  const raw = rawOf.get(store);
  if (!raw || db === raw.db || !raw.mutex.locked) return null;
  return raw.mutex.idle();
}

/**
 * The synchronous SQLite handle for a call into a module not yet converted to the Store (machines, netboot, subnets),
 * from inside a Store transaction (`tx`) or outside one (`store.db`). On SQLite it is the Store's own connection, so
 * the call runs in the open transaction as before. On PostgreSQL there is none: those calls are what still keeps
 * the server from running on PostgreSQL, and `what` names the call in the error.
 * @throws Error on PostgreSQL
 */
export function syncSqlite(store: Store, what: string): Db {
  if (store.dialect !== "sqlite") throw new Error(`${what} is not converted to the Store yet: it cannot run on PostgreSQL`);
  return sqliteDbOf(store);
}

/**
 * Run `fn` in a savepoint of the open transaction `tx`: its writes are undone when it throws (the error is rethrown),
 * and the enclosing transaction goes on. Same meaning on both databases.
 */
export async function savepoint<T>(store: Store, tx: StoreTx, fn: () => Promise<T>): Promise<T> {
  const name = `rh_sp${++savepoints}`;
  const run = async (stmt: string) => {
    if (store.dialect === "sqlite") sqliteDbOf(store).$client.prepare(stmt).run();
    else await tx.execute(sql.raw(stmt));
  };
  await run(`SAVEPOINT ${name}`);
  try {
    const r = await fn();
    await run(`RELEASE SAVEPOINT ${name}`);
    return r;
  } catch (err) {
    await run(`ROLLBACK TO SAVEPOINT ${name}`);
    await run(`RELEASE SAVEPOINT ${name}`);
    throw err;
  }
}
let savepoints = 0;

/** The Store over an open SQLite database (one per connection: they share its mutex). */
export function sqliteStore(db: Db): Store {
  const existing = sqliteStores.get(db);
  if (existing) return existing;
  const mutex = new Mutex();
  const client = db.$client;
  // Prepared once: preparing BEGIN and COMMIT anew cost ~10 µs of every transaction (a single enrollment is ~300 µs).
  const begin = client.prepare("BEGIN IMMEDIATE");
  const commit = client.prepare("COMMIT");
  const rollback = client.prepare("ROLLBACK");
  const store: Store = {
    dialect: "sqlite",
    db: gatedDb(db, mutex) as unknown as StoreDb,
    t: liteSchema as unknown as Tables,
    async transaction(fn) {
      const release = await mutex.lock();
      try {
        // Unconverted synchronous code on the same connection may have left a transaction open only if it threw
        // mid-way; refuse rather than nest silently.
        if (client.inTransaction) throw new Error("SQLite: a transaction is already open on this connection");
        begin.run();
        try {
          const r = await fn(db as unknown as StoreTx);
          commit.run();
          return r;
        } catch (err) {
          if (client.inTransaction) rollback.run();
          throw err;
        }
      } finally {
        release();
      }
    },
    async close() {
      await mutex.idle();
      client.close();
    },
  };
  sqliteStores.set(db, store);
  rawOf.set(store, { db, mutex });
  return store;
}

/** The Store of a domain: its own, or the one over its SQLite database. */
export function storeOf(d: { db: Db; store?: Store }): Store {
  return d.store ?? sqliteStore(d.db);
}

/** The node-postgres pool under a PostgreSQL Store (LISTEN/NOTIFY clients, advisory locks). @throws Error on SQLite */
export function pgPoolOf(store: Store): PgDb["$client"] {
  if (store.dialect !== "postgres") throw new Error("not a PostgreSQL store");
  return (store.db as unknown as PgDb).$client;
}

/** The SQLSTATE of a node-postgres error, also when drizzle wrapped it (DrizzleQueryError.cause). */
export function pgErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  }
  return undefined;
}

const RETRYABLE = new Set(["40P01", "40001"]);

/** The Store over a drizzle node-postgres database. */
export function pgStore(db: PgDb, opts: { sleep?: (ms: number) => Promise<void> } = {}): Store {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  return {
    dialect: "postgres",
    db,
    t: pgSchema,
    async transaction(fn, o = {}) {
      const attempts = o.attempts ?? 5;
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction((tx) => fn(tx), o.isolation ? { isolationLevel: o.isolation } : undefined);
        } catch (err) {
          const code = pgErrorCode(err);
          if (!code || !RETRYABLE.has(code) || attempt >= attempts) throw err;
          // Jittered exponential backoff: 5, 10, 20… ms, so the colliding transactions do not meet again.
          await sleep(Math.min(200, 5 * 2 ** (attempt - 1)) * (0.5 + Math.random()));
        }
      }
    },
    async close() {
      await db.$client.end();
    },
  };
}

/**
 * Open the process's store: PostgreSQL when `databaseUrl` is set (migrations applied under an advisory lock), else
 * the SQLite file `rackhand.db` under the data directory, as always.
 */
export async function openStore(dataDir: string, databaseUrl: string | undefined, pgOpts?: PgOptions): Promise<Store> {
  if (databaseUrl) return pgStore(await openPgDatabase(databaseUrl, pgOpts));
  return sqliteStore(openDatabase(path.join(dataDir, "rackhand.db")));
}

/**
 * Lock the rows of these machines for the rest of the transaction (`SELECT … FOR UPDATE`, ascending ids, so two
 * transactions locking overlapping sets cannot deadlock on them). Check-then-act transactions on a machine's
 * aggregate (its jobs, its hand-power hold…) call it first, machines before jobs. A no-op on SQLite, where
 * `BEGIN IMMEDIATE` already serialises writers. Returns the ids that exist.
 */
export async function lockMachines(tx: StoreTx, ids: readonly number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const onPg = tx instanceof PgTransaction;
  const m = onPg ? pgSchema.machines : (liteSchema.machines as unknown as typeof pgSchema.machines);
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const q = tx.select({ id: m.id }).from(m).where(inArray(m.id, sorted)).orderBy(m.id);
  return (onPg ? await q.for("update") : await q).map((r) => r.id);
}
