import type { Db } from "../db/client";
import { preparedFor } from "../db/prepared";
import { LruMap } from "../db/statement-cache";

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
 * A filter's match count, counted again only after a write: paging through one filter (the table, a bench) counted
 * the same thousands of rows for every page. Never cached inside a transaction (its changes could roll back without
 * moving the version).
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
