import { sql, type SQL, type SQLWrapper } from "drizzle-orm";
import type { Dialect } from "./store";

/**
 * The SQL that differs between SQLite and PostgreSQL, in one place (docs/ARCHITECTURE.md, "PostgreSQL"). Domain
 * code builds everything else with drizzle's dialect-neutral operators (eq, and, inArray, count…).
 */

/** `max(a, b)` of two values (SQLite's scalar max; PostgreSQL's GREATEST). */
export function greatest(d: Dialect, a: SQLWrapper | number, b: SQLWrapper | number): SQL {
  return d === "postgres" ? sql`GREATEST(${a}, ${b})` : sql`max(${a}, ${b})`;
}

/** `min(a, b)` of two values. */
export function least(d: Dialect, a: SQLWrapper | number, b: SQLWrapper | number): SQL {
  return d === "postgres" ? sql`LEAST(${a}, ${b})` : sql`min(${a}, ${b})`;
}

/**
 * Case-insensitive (ASCII, as SQLite's LIKE) match with `\` as the escape character: `LIKE` on SQLite, `ILIKE` on
 * PostgreSQL. `pattern` is bound as a parameter; escape its wildcards with `escapeLike`.
 */
export function likeCi(d: Dialect, col: SQLWrapper, pattern: string): SQL {
  return d === "postgres" ? sql`${col} ILIKE ${pattern} ESCAPE '\\'` : sql`${col} LIKE ${pattern} ESCAPE '\\'`;
}

/** Escape LIKE wildcards (`%`, `_`, and the escape `\` itself) so the text matches literally. */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A top-level key of a JSON column, as text (`json_extract` on SQLite, `->>` on jsonb). `key` is bound. */
export function jsonText(d: Dialect, col: SQLWrapper, key: string): SQL<string | null> {
  const path = jsonPathKey(key); // refused alike on both, though PostgreSQL would take any key
  return d === "postgres" ? sql`(${col} ->> ${key})` : sql`json_extract(${col}, ${"$." + path})`;
}

/** Length of a JSON array column (null when not an array on PostgreSQL, 0 on SQLite's json_array_length of non-arrays). */
export function jsonArrayLength(d: Dialect, col: SQLWrapper): SQL<number | null> {
  return d === "postgres" ? sql`jsonb_array_length(${col})` : sql`json_array_length(${col})`;
}

/** A nested value of a JSON column as text (`json_extract` with a path on SQLite, `#>>` on jsonb). Keys are bound. */
export function jsonPathText(d: Dialect, col: SQLWrapper, keys: string[]): SQL<string | null> {
  return d === "postgres" ? sql`(${col} #>> ${pgPath(keys)}::text[])` : sql`json_extract(${col}, ${sqlitePath(keys)})`;
}

/** A nested number of a JSON column (null when absent; on PostgreSQL null too when it is not a number). */
export function jsonPathNumber(d: Dialect, col: SQLWrapper, keys: string[]): SQL<number | null> {
  return d === "postgres"
    ? sql`(CASE WHEN jsonb_typeof(${col} #> ${pgPath(keys)}::text[]) = 'number' THEN (${col} #>> ${pgPath(keys)}::text[])::numeric END)`
    : sql`json_extract(${col}, ${sqlitePath(keys)})`;
}

/** Length of a nested JSON array: null when absent, 0 when not an array (SQLite's json_array_length, on both). */
export function jsonPathArrayLength(d: Dialect, col: SQLWrapper, keys: string[]): SQL<number | null> {
  if (d === "sqlite") return sql`json_array_length(${col}, ${sqlitePath(keys)})`;
  const v = sql`(${col} #> ${pgPath(keys)}::text[])`;
  return sql`(CASE WHEN ${v} IS NULL THEN NULL WHEN jsonb_typeof(${v}) = 'array' THEN jsonb_array_length(${v}) ELSE 0 END)`;
}

const sqlitePath = (keys: string[]) => "$." + keys.map(jsonPathKey).join(".");
function pgPath(keys: string[]): string {
  for (const k of keys) {
    jsonPathKey(k);
    if (/[{},\s]/.test(k) || k === "") throw new Error(`JSON key ${JSON.stringify(k)} may not be empty or contain braces, commas or spaces`);
  }
  return `{${keys.join(",")}}`;
}

/** A key usable in a SQLite JSON path: quoted, so dots and brackets in it stay part of the key. */
function jsonPathKey(key: string): string {
  if (/["\\\u0000-\u001f]/.test(key)) throw new Error(`JSON key ${JSON.stringify(key)} may not contain quotes, backslashes or control characters`);
  return `"${key}"`;
}

/** A select builder that can take a row lock (PostgreSQL's; SQLite's has none, and is not asked to). */
interface Lockable {
  for(strength: "update", config?: { skipLocked?: boolean; noWait?: boolean }): unknown;
}

/**
 * `SELECT … FOR UPDATE` on PostgreSQL; the query unchanged on SQLite, where the Store's `BEGIN IMMEDIATE`
 * transaction already holds the database's write lock. Await the result.
 */
export function forUpdate<Q extends Lockable & PromiseLike<unknown>>(d: Dialect, q: Q): PromiseLike<Awaited<Q>> {
  return (d === "postgres" ? q.for("update") : q) as PromiseLike<Awaited<Q>>;
}

/** A timestamp column plus a number of seconds from an integer column, as a timestamp of the column's kind. */
export function plusSeconds(d: Dialect, ts: SQLWrapper, seconds: SQLWrapper): SQL {
  return d === "postgres" ? sql`(${ts} + ${seconds} * interval '1 second')` : sql`(${ts} + ${seconds} * 1000)`;
}

/**
 * Text ordered and compared byte-wise (UTF-8 byte order is code point order), as SQLite's default BINARY collation
 * does: `COLLATE "C"` on PostgreSQL, whose database collation (often en_US.UTF-8) would order "B" after "a", ignore
 * punctuation at first, and differ between installations.
 */
export function bytewise(d: Dialect, x: SQLWrapper): SQL {
  return d === "postgres" ? sql`${x} COLLATE "C"` : sql`${x}`;
}
