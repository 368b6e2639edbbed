import { sqliteDbOf, sqliteWait, type Store, type StoreDb, type StoreTx, type Tables } from "./store";

type Q = StoreDb | StoreTx;
type Params = Record<string, unknown>;

/** The query built on `db` (the Store's, or a transaction's), with placeholders for its parameters. */
type Build = (db: Q, t: Tables) => unknown;
type Mode = "all" | "get" | "run";

/**
 * One hot statement on either database, written once with placeholders:
 * - SQLite: prepared once on the Store's connection and run synchronously (building drizzle's SQL text of each query
 *   every time was most of the engine's cost: bench:deploy, docs/BENCHMARKS.md). Transactions run on that
 *   connection, so the statement reads and writes inside the open one; `db` is not needed.
 * - PostgreSQL: built once as a named prepared statement (node-postgres prepares it on each pooled connection the first
 *   time it runs there, and sends only its name and values afterwards), and run on `db`'s connection: the pool's, or the
 *   open transaction's. Building drizzle's SQL text per call and PostgreSQL parsing it per call were most of the
 *   server's and the database's CPU in bench:deploy --db postgres.
 */
export function hot<R>(store: Store, mode: Mode, build: Build): (db: Q, params?: Params) => Promise<R> {
  if (store.dialect === "sqlite") {
    const raw = sqliteDbOf(store);
    // Prepared once on SQLite's connection: the one place the slice runs statements synchronously.
    const stmt = (build(raw as unknown as Q, store.t) as { prepare(): Record<Mode, (p?: Params) => unknown> }).prepare();
    return async (db, params) => {
      // Outside a transaction (`db` is store.db), wait for an open one to end, as an awaited store.db query does
      // (checked again after each wait: another may have begun meanwhile).
      for (let wait = sqliteWait(store, db); wait; wait = sqliteWait(store, db)) await wait;
      return stmt[mode](params) as R;
    };
  }
  const prepared = (build(store.db, store.t) as { prepare(name: string): PgPrepared }).prepare(`rh_hot_${++statements}`);
  if (!("client" in prepared)) throw new Error("drizzle's node-postgres prepared query has no `client`: hot() needs updating for this drizzle version");
  return async (db, params) => {
    const rows = (await onConnectionOf(prepared, db).execute(params)) as unknown[];
    return (mode === "get" ? rows[0] : mode === "all" ? rows : undefined) as R;
  };
}

/** drizzle's node-postgres prepared query: it runs on its `client` (a pool, or a transaction's pooled connection). */
type PgPrepared = { client: unknown; execute(p?: Params): Promise<unknown> };
let statements = 0;

/**
 * The prepared query run on `db`'s connection: the prepared query itself for the pool, or a view of it whose
 * `client` is the transaction's connection (drizzle's NodePgTransaction keeps it as `session.client`).
 */
function onConnectionOf(prepared: PgPrepared, db: Q): PgPrepared {
  const client = (db as unknown as { session?: { client?: unknown } }).session?.client;
  if (!client) throw new Error("hot(): not a drizzle node-postgres database or transaction");
  if (client === prepared.client) return prepared;
  return Object.create(prepared, { client: { value: client } }) as PgPrepared;
}
