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
 * - PostgreSQL: built on `db` (the pool or the transaction's client) and run with the values, each time; a round trip
 *   costs more than building it.
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
  return async (db, params) => {
    const rows = (await (build(db, store.t) as { execute(p?: Params): Promise<unknown> }).execute(params)) as unknown[];
    return (mode === "get" ? rows[0] : mode === "all" ? rows : undefined) as R;
  };
}
