import { getTableColumns, getTableName, is, sql, SQL, type Table } from "drizzle-orm";
import { hot } from "./hot";
import type { Store, StoreDb, StoreTx, Tables } from "./store";

type Q = StoreDb | StoreTx;
type Columns = Record<string, { name: string; hasDefault: boolean; default: unknown }>;
type Insert = (db: Q, values: Record<string, unknown>) => Promise<Record<string, unknown> | undefined>;
const perStore = new WeakMap<Store, Map<string, Insert>>();

/**
 * A single-row INSERT of these fields of `table` (one of `store.t`) through `hot()`: prepared once and run
 * synchronously on SQLite (drizzle's insert builder cost more than the row: enrollment, issue 15), built per call on
 * PostgreSQL; `returning` the given columns (the promise's row) or nothing. Drizzle applies the columns' encoders to
 * an insert's placeholders (Date, boolean, JSON); a field left undefined takes the schema's default, as its insert does. One statement per table, field list and returning list.
 */
export function insertOne(store: Store, table: Table, fields: string[], returning: string[] = []): Insert {
  let cache = perStore.get(store);
  if (!cache) perStore.set(store, (cache = new Map<string, Insert>()));
  const key = `${getTableName(table)}(${fields.join(",")})->${returning.join(",")}`;
  let fn = cache.get(key);
  if (!fn) {
    const cols = getTableColumns(table) as unknown as Columns;
    const used = fields.map((f) => {
      const c = cols[f];
      if (!c) throw new Error(`${getTableName(table)} has no column ${f}`);
      return c;
    });
    const defaults = used.map((c) => (c.hasDefault && c.default !== undefined && !is(c.default, SQL) ? c.default : null));
    const name = (Object.keys(store.t) as (keyof Tables)[]).find((k) => store.t[k] === table);
    if (!name) throw new Error(`insertOne: ${getTableName(table)} is not a table of this Store`);
    const run = hot<Record<string, unknown> | undefined>(store, returning.length ? "get" : "run", (db, t) => {
      const tt = t[name] as unknown as Record<string, unknown>;
      const ins = (db.insert(t[name]) as unknown as { values(v: Record<string, unknown>): { returning(r: Record<string, unknown>): unknown } }).values(
        Object.fromEntries(fields.map((f) => [f, sql.placeholder(f)])),
      );
      return returning.length ? ins.returning(Object.fromEntries(returning.map((r) => [r, tt[r]]))) : ins;
    });
    fn = (db, values) => {
      const params: Record<string, unknown> = {};
      fields.forEach((f, i) => {
        const v = values[f] === undefined ? defaults[i] : values[f];
        params[f] = v ?? null;
      });
      return run(db, params);
    };
    cache.set(key, fn);
  }
  return fn;
}
