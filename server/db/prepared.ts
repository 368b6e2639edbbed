import { getTableColumns, getTableName, is, SQL } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Db } from "./client";
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

/**
 * A prepared single-row INSERT of the given fields of a drizzle table, values mapped as drizzle maps them (Date to
 * its integer form, boolean to 0/1). Built from the schema's column names, so it follows the schema; unset columns
 * take their SQL defaults. Drizzle's own builder costs far more per row than the insert itself.
 */
type Columns = Record<string, { name: string; hasDefault: boolean; default: unknown; mapToDriverValue(v: unknown): unknown }>;
const inserts = new WeakMap<object, Map<string, (values: Record<string, unknown>) => number>>();

export function insertRow(db: Db, table: SQLiteTable, fields: string[]): (values: Record<string, unknown>) => number {
  let cache = inserts.get(db.$client);
  if (!cache) inserts.set(db.$client, (cache = new Map<string, (values: Record<string, unknown>) => number>()));
  const key = `${getTableName(table)}(${fields.join(",")})`;
  let fn = cache.get(key);
  if (!fn) {
    const cols = getTableColumns(table) as unknown as Columns;
    const used = fields.map((f) => {
      const c = cols[f];
      if (!c) throw new Error(`${getTableName(table)} has no column ${f}`);
      return c;
    });
    const stmt = db.$client.prepare(
      `INSERT INTO "${getTableName(table)}" (${used.map((c) => `"${c.name}"`).join(", ")}) VALUES (${used.map(() => "?").join(", ")})`,
    );
    // A field named but left undefined takes the schema's default value, as drizzle's insert does (null is null).
    const defaults = used.map((c) => (c.hasDefault && c.default !== undefined && !is(c.default, SQL) ? c.default : null));
    const value = (v: unknown, i: number) => (v === undefined ? defaults[i] : v);
    fn = (values) => Number(stmt.run(fields.map((f, i) => { const v = value(values[f], i); return v == null ? null : used[i]!.mapToDriverValue(v); })).lastInsertRowid);
    cache.set(key, fn);
  }
  return fn;
}

/**
 * A multi-row INSERT of the given fields (the rows of one bulk write): `VALUES (…), (…), …` in chunks of up to `chunk`
 * rows, values mapped as insertRow maps them (undefined takes the column's default). Returns nothing: for tables
 * whose new ids the caller does not need. One statement per 100 rows costs far less than 100 single-row runs.
 */
export function insertMany(db: Db, table: SQLiteTable, fields: string[], chunk = 100): (rows: Record<string, unknown>[]) => void {
  const run = insertManyReturning(db, table, fields, [], chunk);
  return (rows) => void run(rows);
}

/**
 * insertMany that also returns the given columns of the new rows (`RETURNING`), in no promised order: key them by
 * a unique column (SQLite does not promise RETURNING rows in VALUES order).
 */
export function insertManyReturning(db: Db, table: SQLiteTable, fields: string[], returning: string[], chunk = 100): (rows: Record<string, unknown>[]) => Record<string, unknown>[] {
  const cols = getTableColumns(table) as unknown as Columns;
  const used = fields.map((f) => {
    const c = cols[f];
    if (!c) throw new Error(`${getTableName(table)} has no column ${f}`);
    return c;
  });
  const defaults = used.map((c) => (c.hasDefault && c.default !== undefined && !is(c.default, SQL) ? c.default : null));
  const head = `INSERT INTO "${getTableName(table)}" (${used.map((c) => `"${c.name}"`).join(", ")}) VALUES `;
  const tuple = `(${used.map(() => "?").join(", ")})`;
  const back = returning.map((f) => {
    const c = cols[f];
    if (!c) throw new Error(`${getTableName(table)} has no column ${f}`);
    return `"${c.name}" AS "${f}"`;
  });
  const tail = back.length ? ` RETURNING ${back.join(", ")}` : "";
  const statement = (n: number) =>
    preparedFor(db.$client, `insertMany ${getTableName(table)}(${fields.join(",")}) x${n}${tail}`, () => db.$client.prepare(head + Array(n).fill(tuple).join(", ") + tail));
  return (rows) => {
    const out: Record<string, unknown>[] = [];
    for (let at = 0; at < rows.length; at += chunk) {
      const part = rows.slice(at, at + chunk);
      const values: unknown[] = [];
      for (const row of part) {
        for (let i = 0; i < fields.length; i++) {
          const raw = row[fields[i]!];
          const v = raw === undefined ? defaults[i] : raw;
          values.push(v == null ? null : used[i]!.mapToDriverValue(v));
        }
      }
      const st = statement(part.length);
      if (back.length) for (const r of st.all(values) as Record<string, unknown>[]) out.push(r);
      else st.run(values);
    }
    return out;
  };
}
