import { getTableName, is, SQL, type Column } from "drizzle-orm";
import { getTableConfig as pgConfig, PgDialect, PgTable } from "drizzle-orm/pg-core";
import { getTableConfig as sqliteConfig, SQLiteSyncDialect, SQLiteTable } from "drizzle-orm/sqlite-core";

/**
 * The rule that keeps the two schemas one model: server/db/schema (SQLite, the source of truth) and
 * server/db/pg/schema (its PostgreSQL twin) must describe the same tables, columns, keys and indexes, each SQLite
 * column kind spelled as its PostgreSQL counterpart (see pg/schema/columns.ts). `schemaDiff` lists every
 * difference; parity.test.ts fails on any.
 */

/** A dialect-neutral description of one table: what both schemas must agree on. */
interface TableShape {
  columns: Record<string, string>;
  indexes: Record<string, string>;
  foreignKeys: string[];
  primaryKeys: string[];
  uniques: string[];
  checks: string[];
}

type AnyTable = SQLiteTable | PgTable;

/** The tables exported by a schema module, by SQL name. */
export function tablesOf(mod: Record<string, unknown>): Map<string, AnyTable> {
  const out = new Map<string, AnyTable>();
  for (const v of Object.values(mod)) if (is(v, SQLiteTable) || is(v, PgTable)) out.set(getTableName(v), v);
  return out;
}

/** The kind a column has in both dialects; "?" for a SQLite column kind with no PostgreSQL spelling decided yet. */
function kindOf(c: Column): string {
  const col = c as Column & { mode?: string; withTimezone?: boolean; precision?: number; autoIncrement?: boolean; generatedIdentity?: { type: string } };
  switch (c.columnType) {
    case "SQLiteInteger":
    case "PgInteger":
    case "PgBigInt53":
      return "int";
    case "SQLiteTimestamp":
      return col.mode === "timestamp_ms" ? "timestamp_ms" : `? SQLite timestamp mode ${col.mode}`;
    case "PgTimestamp":
      return col.withTimezone && col.precision === 3 ? "timestamp_ms" : "? timestamp without time zone or precision 3";
    case "SQLiteBoolean":
    case "PgBoolean":
      return "boolean";
    case "SQLiteText":
    case "PgText":
      return "text";
    case "SQLiteTextJson":
    case "PgJsonb":
      return "json";
    default:
      return `? ${c.columnType}`;
  }
}

function identityOf(c: Column): string {
  const col = c as Column & { autoIncrement?: boolean; generatedIdentity?: { type: string } };
  if (col.autoIncrement) return "identity";
  if (col.generatedIdentity) return col.generatedIdentity.type === "byDefault" ? "identity" : `identity ${col.generatedIdentity.type}`;
  return "";
}

function sqlText(s: SQL, dialect: "sqlite" | "pg", booleans: Set<string>): string {
  const q = dialect === "sqlite" ? new SQLiteSyncDialect().sqlToQuery(s) : new PgDialect().sqlToQuery(s);
  let text = q.sql.replace(/"[^"]+"\./g, "").replace(/"/g, "").replace(/\s+/g, " ").trim();
  // SQLite stores booleans as 0/1: `is_boot = 1` there is `is_boot = true` here.
  if (dialect === "sqlite") for (const b of booleans) text = text.replace(new RegExp(`\\b${b} = 1\\b`, "g"), `${b} = true`).replace(new RegExp(`\\b${b} = 0\\b`, "g"), `${b} = false`);
  return q.params.length ? `${text} ${JSON.stringify(q.params)}` : text;
}

function defaultOf(c: Column, dialect: "sqlite" | "pg"): string {
  if (c.defaultFn) return "fn";
  if (!c.hasDefault || c.default === undefined) return "";
  return is(c.default, SQL) ? `sql:${sqlText(c.default, dialect, new Set())}` : JSON.stringify(c.default);
}

function shapeOf(t: AnyTable): TableShape {
  const dialect = is(t, SQLiteTable) ? "sqlite" : "pg";
  const cfg = is(t, SQLiteTable) ? sqliteConfig(t) : pgConfig(t as PgTable);
  const booleans = new Set(cfg.columns.filter((c) => kindOf(c) === "boolean").map((c) => c.name));
  const columns: Record<string, string> = {};
  for (const c of cfg.columns) {
    const enumValues = (c as Column & { enumValues?: string[] }).enumValues;
    columns[c.name] = [
      kindOf(c),
      c.notNull ? "not null" : "null",
      c.primary ? "primary key" : "",
      identityOf(c),
      c.isUnique ? `unique ${c.uniqueName ?? ""}` : "",
      defaultOf(c, dialect),
      enumValues?.length ? `enum ${enumValues.join("|")}` : "",
      c.onUpdateFn ? "onUpdateFn" : "",
    ]
      .filter(Boolean)
      .join(", ");
  }
  const indexes: Record<string, string> = {};
  for (const idx of cfg.indexes) {
    const ic = idx.config as { name?: string; columns: unknown[]; unique: boolean; where?: SQL; method?: string };
    // A PostgreSQL index on `col COLLATE "C"` orders as SQLite's default BINARY collation orders `col`: the same index.
    const cols = ic.columns.map((c) => (is(c, SQL) ? `(${sqlText(c, dialect, booleans)})`.replace(/^\((\w+) COLLATE C\)$/, dialect === "pg" ? "$1" : "($1 COLLATE C)") : (c as { name: string }).name));
    const method = ic.method && ic.method !== "btree" ? ` using ${ic.method}` : "";
    indexes[ic.name ?? "?"] = `${ic.unique ? "unique " : ""}(${cols.join(", ")})${method}${ic.where ? ` where ${sqlText(ic.where, dialect, booleans)}` : ""}`;
  }
  const foreignKeys = cfg.foreignKeys
    .map((fk) => {
      const r = fk.reference();
      return `(${r.columns.map((c) => c.name).join(", ")}) -> ${getTableName(r.foreignTable)}(${r.foreignColumns.map((c) => c.name).join(", ")}) on delete ${fk.onDelete ?? "no action"} on update ${fk.onUpdate ?? "no action"}`;
    })
    .sort();
  const primaryKeys = cfg.primaryKeys.map((pk) => pk.columns.map((c) => c.name).join(", ")).sort();
  const uniques = cfg.uniqueConstraints.map((u) => `${u.getName?.() ?? ""}(${u.columns.map((c) => c.name).join(", ")})`).sort();
  const checks = cfg.checks.map((c) => c.name).sort();
  return { columns, indexes, foreignKeys, primaryKeys, uniques, checks };
}

/** Every difference between the SQLite schema module and the PostgreSQL one, as readable lines; [] when equal. */
export function schemaDiff(sqliteSchema: Record<string, unknown>, pgSchema: Record<string, unknown>): string[] {
  const a = tablesOf(sqliteSchema);
  const b = tablesOf(pgSchema);
  const out: string[] = [];
  for (const name of a.keys()) if (!b.has(name)) out.push(`table ${name}: in the SQLite schema only (add it to server/db/pg/schema)`);
  for (const name of b.keys()) if (!a.has(name)) out.push(`table ${name}: in the PostgreSQL schema only`);
  for (const [name, st] of a) {
    const pt = b.get(name);
    if (!pt) continue;
    if (!is(st, SQLiteTable)) out.push(`table ${name}: the SQLite schema exports a non-SQLite table`);
    if (!is(pt, PgTable)) out.push(`table ${name}: the PostgreSQL schema exports a non-PostgreSQL table`);
    const s = shapeOf(st);
    const p = shapeOf(pt);
    for (const k of ["columns", "indexes"] as const) {
      for (const col of new Set([...Object.keys(s[k]), ...Object.keys(p[k])])) {
        const sv = s[k][col];
        const pv = p[k][col];
        if (sv === undefined) out.push(`${name}.${k} ${col}: PostgreSQL only (${pv})`);
        else if (pv === undefined) out.push(`${name}.${k} ${col}: SQLite only (${sv})`);
        else if (sv !== pv || sv.includes("?")) out.push(`${name}.${k} ${col}: SQLite "${sv}" vs PostgreSQL "${pv}"`);
      }
    }
    for (const k of ["foreignKeys", "primaryKeys", "uniques", "checks"] as const) {
      const sv = JSON.stringify(s[k]);
      const pv = JSON.stringify(p[k]);
      if (sv !== pv) out.push(`${name}.${k}: SQLite ${sv} vs PostgreSQL ${pv}`);
    }
  }
  return out;
}
