import { LruMap } from "./statement-cache";

/**
 * Queries built once per database and shape, then run with placeholder values: drizzle builds a query's SQL text
 * anew on every run (walking its whole expression tree), which costs more than running a small query. `key` must
 * name everything that changes the SQL text; the values go in as `sql.placeholder()`s.
 */
const perDb = new WeakMap<object, LruMap<string, unknown>>();

export function preparedFor<T>(db: object, key: string, build: () => T, max = 200): T {
  let cache = perDb.get(db);
  if (!cache) perDb.set(db, (cache = new LruMap(max)));
  let hit = cache.get(key) as T | undefined;
  if (hit === undefined) cache.set(key, (hit = build()));
  return hit;
}
