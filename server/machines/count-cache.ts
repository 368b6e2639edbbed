/**
 * The machine list's match counts, counted again only after a write: paging through one filter (the table, a bench,
 * an export) otherwise counted the same thousands of rows for every page. The cache is per process, but its
 * version is the database's own, so a write by any connection or process invalidates it, whether or not an event
 * announced it. Not the event bus: not every write publishes an event, and the PostgreSQL bus bridge
 * (server/events/pg-bus-bridge.ts) drops events while its connection is down or its queue is full, so a cache
 * cleared by bus events could keep a stale count for good.
 */
import { sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { preparedFor } from "../db/prepared";
import { LruMap } from "../db/statement-cache";
import type { Store } from "../db/store";

/**
 * The database's write version as this connection sees it: total_changes() counts every row this connection
 * inserted, updated or deleted (triggers included), data_version moves when another connection commits. The same
 * version twice means no row anywhere changed in between.
 */
function writeVersion(db: Db): string {
  const st = preparedFor(db, "db.write-version", () =>
    db.$client.prepare<[], { c: number; v: number }>("SELECT total_changes() AS c, (SELECT data_version FROM pragma_data_version) AS v"),
  );
  const r = st.get()!;
  return `${r.c}:${r.v}`;
}

const counts = new WeakMap<object, LruMap<string, { version: string; n: number }>>();

/**
 * A filter's match count on SQLite, counted again only after a write. Never cached inside a transaction (its changes
 * could roll back without moving the version).
 */
export function cachedCount(db: Db, key: string, count: () => number): number {
  if (db.$client.inTransaction) return count();
  let cache = counts.get(db.$client);
  if (!cache) counts.set(db.$client, (cache = new LruMap(64)));
  const version = writeVersion(db);
  const hit = cache.get(key);
  if (hit?.version === version) return hit.n;
  const n = count();
  cache.set(key, { version, n });
  return n;
}

const pgCounts = new WeakMap<Store, LruMap<string, { version: string; n: number }>>();

/**
 * cachedCount on PostgreSQL. The version is the database snapshot (`pg_current_snapshot()`: the oldest running
 * transaction, the next transaction id and the ones in flight), taken by the count's own statement. The same
 * snapshot text later means the same set of committed transactions, so the same rows: any commit, by any process,
 * changes it. Transaction ids are shared by the whole cluster, so writes anywhere (other tables, other databases)
 * also invalidate; a cached count then costs one small query more than counting. `count` returns the count and
 * `pg_current_snapshot()::text` from one statement. Never call it inside a transaction.
 */
export async function cachedCountPg(store: Store, key: string, count: () => Promise<{ n: number; version: string }>): Promise<number> {
  let cache = pgCounts.get(store);
  if (!cache) pgCounts.set(store, (cache = new LruMap(64)));
  const hit = cache.get(key);
  if (hit) {
    const r = await store.db.execute<{ v: string }>(sql`SELECT pg_current_snapshot()::text AS v`);
    if (r.rows[0]?.v === hit.version) return hit.n;
  }
  const { n, version } = await count();
  cache.set(key, { version, n });
  return n;
}
