/**
 * The machine table: one page of machines, filtered and sorted in SQL, with offset or keyset (cursor) paging and a
 * cached match count, on either database (docs/ARCHITECTURE.md, "PostgreSQL").
 *
 * - SQLite, the main path: statements prepared once per shape (server/db/prepared.ts) on the Store's connection
 *   (`sqliteDbOf`), run synchronously once no Store transaction is open (issue 15 tuned it: two steps, ids then rows).
 * - PostgreSQL: drizzle queries through the Store (the page's ids, then its rows; the count beside them), in the same
 *   order (text keys compared byte-wise, `COLLATE "C"`, as SQLite's BINARY; NULLs placed as SQLite places them; ties
 *   by id), with the same filter semantics and the same cursors.
 */
import { and, asc, Column, desc, eq, inArray, is, noopDecoder, or, sql, type Placeholder, type SQL, type SQLWrapper } from "drizzle-orm";
import { preparedFor } from "../db/prepared";
import { AppError } from "../../lib/errors";
import type { MachineRow } from "../../lib/dto";
import { MACHINE_STATES } from "../../lib/lifecycle";
import { normalizeMac } from "../../lib/net";
import type { MachineFilter, SortField } from "../../lib/schemas";
import type { Db } from "../db/client";
import { bmcs, machines, nics, osProfiles, racks } from "../db/schema";
import { bytewise as bytewisePg, escapeLike, jsonPathArrayLength, jsonPathNumber, jsonPathText, likeCi } from "../db/sql";
import { sqliteDbOf, sqliteWait, type Dialect, type Store, type Tables } from "../db/store";
import { cachedCount, cachedCountPg } from "./count-cache";

const bootNic = sql`${nics.machineId} = ${machines.id} AND ${nics.isBoot} = 1`;

/** Escape LIKE wildcards so a search for "10_0" means the literal text. */
function likeText(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * How a filter's values enter its SQL: as they are (the default), or as named placeholders of a prepared query
 * (listRows; there it returns a drizzle Placeholder, which every operator used here accepts in place of the value).
 * Every branch that changes the SQL text binds a name of its own, so the names bound, in order, tell the shape.
 */
type Bind = <T extends string | number>(name: string, value: T) => T;
const asValue: Bind = (_name, value) => value;

/** SQLite conditions for a machine filter (the prepared list's; storeFilterConditions is the Store's twin). */
function filterConditions(f: MachineFilter, bind: Bind = asValue): SQL | undefined {
  const conds: (SQL | undefined)[] = [];
  if (f.states?.length) conds.push(inArray(machines.state, f.states.map((st, i) => bind(`state${i}`, st))));
  if (f.rackId) conds.push(eq(machines.rackId, bind("rackId", f.rackId)));
  if (f.power) conds.push(eq(machines.powerState, bind("power", f.power)));
  // 1/0: a placeholder's value goes to SQLite as it is, without the boolean column's mapping (which maps 1 to 1).
  if (f.maintenance !== undefined) conds.push(eq(machines.maintenance, bind("maintenance", f.maintenance ? 1 : 0) as unknown as boolean));
  if (f.q) {
    const mac = normalizeMac(f.q);
    // A partial MAC typed with dashes or in Cisco dots still finds the colon form we store.
    const partialMac = /^[0-9a-f]{2}([-:][0-9a-f]{1,2})+[-:]?$/i.test(f.q) ? f.q.toLowerCase().replaceAll("-", ":") : null;
    const pat = bind("q", likeText(f.q.toLowerCase()));
    conds.push(
      or(
        sql`${machines.name} LIKE ${pat} ESCAPE '\\'`,
        sql`${nics.ip} LIKE ${pat} ESCAPE '\\'`,
        mac ? eq(nics.mac, bind("qMac", mac)) : sql`${nics.mac} LIKE ${bind("qMacLike", partialMac ? likeText(partialMac) : likeText(f.q.toLowerCase()))} ESCAPE '\\'`,
      ),
    );
  }
  // Inventory filters read the agent's JSON; machines without an inventory never match them.
  if (f.minMemoryGiB !== undefined) conds.push(sql`json_extract(${machines.inventory}, '$.memoryBytes') >= ${bind("minMemory", Math.round(f.minMemoryGiB * 2 ** 30))}`);
  if (f.minDisks !== undefined) conds.push(sql`json_array_length(${machines.inventory}, '$.disks') >= ${bind("minDisks", f.minDisks)}`);
  if (f.cpuModel) conds.push(sql`json_extract(${machines.inventory}, '$.cpu.model') LIKE ${bind("cpuModel", likeText(f.cpuModel.toLowerCase()))} ESCAPE '\\'`);
  const present = conds.filter((c): c is SQL => c !== undefined);
  return present.length ? and(...present) : undefined;
}

const stateOrder = sql.raw(
  `CASE machines.state ${MACHINE_STATES.map((s, i) => `WHEN '${s}' THEN ${i}`).join(" ")} ELSE ${MACHINE_STATES.length} END`,
);

const SORT_COLUMNS: Record<SortField, SQL[]> = {
  name: [sql`${machines.name}`],
  // Lifecycle order (enrolled … clean_failed), not alphabetical.
  state: [stateOrder, sql`${machines.name}`],
  power: [sql`${machines.powerState}`, sql`${machines.name}`],
  rack: [sql`${racks.name}`, sql`${machines.uPosition}`],
  // Numeric order of dotted quads ("10.0.0.9" before "10.0.0.10"); ip_num is registered in db/client.ts.
  ip: [sql`ip_num(${nics.ip})`],
  mac: [sql`${nics.mac}`],
  created: [sql`${machines.id}`],
};

const rowColumns = {
  id: machines.id,
  name: machines.name,
  state: machines.state,
  powerState: machines.powerState,
  powerPending: machines.powerPending,
  maintenance: machines.maintenance,
  rackId: machines.rackId,
  rackName: racks.name,
  uPosition: machines.uPosition,
  uHeight: machines.uHeight,
  firmware: machines.firmware,
  bootFirmware: machines.bootFirmware,
  bootMac: nics.mac,
  ip: nics.ip,
  osProfileName: osProfiles.name,
  lastError: machines.lastError,
  bmcReachable: bmcs.reachable,
  bmcLastSeen: sql<number | null>`${bmcs.lastSeen}`,
};

export interface ListResult<Row = MachineRow> {
  rows: Row[];
  total: number;
  page: number;
  pageSize: number;
  /** Pass as `cursor` for the rows after this page (keyset paging); null on the last page. */
  nextCursor: string | null;
}

type RowField = keyof typeof rowColumns;
type PartialRow = Partial<MachineRow> & { id: number };

/** The row query with its joins chosen at run time (drizzle's types follow each join; the rows' type is below). */
interface RowQuery {
  leftJoin(table: typeof nics | typeof racks | typeof osProfiles | typeof bmcs, on: SQL): RowQuery;
  where(where: SQL | undefined): RowQuery;
  orderBy(...order: SQL[]): RowQuery;
  limit(n: number | Placeholder): RowQuery;
  offset(n: number | Placeholder): RowQuery;
  all(): PartialRow[];
  prepare(): { values(values: Record<string, unknown>): unknown[][] };
}

/**
 * Raw rows (arrays in the order of `cols`, as drizzle selects them) to row objects, each value decoded as drizzle
 * decodes it (booleans, enums; NULL stays null). Drizzle's own mapping tests every cell's type on every row.
 */
function rowMapper(cols: Record<string, unknown>): (rows: unknown[][]) => PartialRow[] {
  const keys = Object.keys(cols);
  const decoders = keys.map((k) => {
    const f = cols[k];
    // A sql`` field keeps its decoder (mapWith's, else one that passes the value through) on an internal property.
    const d = is(f, Column) ? f : (f as { decoder: { mapFromDriverValue(v: unknown): unknown } }).decoder;
    // Text and plain integer columns (and sql`` without mapWith) pass the value through: no call per cell for them.
    const identity = d.mapFromDriverValue === Column.prototype.mapFromDriverValue || d.mapFromDriverValue === noopDecoder.mapFromDriverValue;
    return identity ? null : d;
  });
  return (rows) =>
    rows.map((row) => {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const v = row[i];
        const d = decoders[i];
        o[keys[i]!] = v === null ? null : d ? d.mapFromDriverValue(v) : v;
      }
      return o as PartialRow;
    });
}

/** The table's row columns (or only `fields`, with `id`) with the joins they need. */
function selectRows(db: Db, fields?: readonly RowField[]) {
  const cols: Partial<typeof rowColumns> = fields ? { id: rowColumns.id } : { ...rowColumns };
  for (const f of fields ?? []) (cols as Record<string, unknown>)[f] = rowColumns[f];
  const map = rowMapper(cols);
  const has = (...f: RowField[]) => !fields || f.some((x) => fields.includes(x));
  let q = db.select(cols as typeof rowColumns).from(machines).$dynamic() as unknown as RowQuery;
  if (has("bootMac", "ip")) q = q.leftJoin(nics, bootNic);
  if (has("rackName")) q = q.leftJoin(racks, eq(racks.id, machines.rackId));
  if (has("osProfileName")) q = q.leftJoin(osProfiles, eq(osProfiles.id, machines.osProfileId));
  if (has("bmcReachable", "bmcLastSeen")) q = q.leftJoin(bmcs, eq(bmcs.machineId, machines.id));
  return { q, map };
}

/**
 * Keyset paging. Each sort's key, as non-null expressions that order exactly as SORT_COLUMNS does (SQLite puts NULL
 * before every value; the COALESCE values lie below every real one), then the id ascending as SORT_COLUMNS ends.
 * `unique`: the key alone is unique, so no id is needed to break ties.
 */
const SORT_KEYS: Record<SortField, { keys: SQL[]; unique: boolean }> = {
  name: { keys: [sql`${machines.name}`], unique: true },
  state: { keys: [stateOrder, sql`${machines.name}`], unique: true },
  power: { keys: [sql`${machines.powerState}`, sql`${machines.name}`], unique: true },
  rack: { keys: [sql`coalesce(${racks.name}, '')`, sql`coalesce(${machines.uPosition}, -1)`], unique: false },
  ip: { keys: [sql`coalesce(ip_num(${nics.ip}), -1)`], unique: false },
  mac: { keys: [sql`coalesce(${nics.mac}, '')`], unique: false },
  created: { keys: [sql`${machines.id}`], unique: true },
};

/**
 * The kind of each sort key, as a cursor must carry it: PostgreSQL compares a key with a bound value of the key's
 * type (an integer key with a string would be an error there, a different order on SQLite), so both refuse it.
 */
const KEY_KINDS: Record<SortField, readonly ("text" | "int")[]> = {
  name: ["text"],
  state: ["int", "text"],
  power: ["text", "text"],
  rack: ["text", "int"],
  ip: ["int"],
  mac: ["text"],
  created: ["int"],
};

type KeyValue = string | number;
interface Cursor {
  k: KeyValue[];
  id: number;
}

function badCursor(why: string): AppError {
  return new AppError("VALIDATION", `Invalid cursor: ${why}. Pass the nextCursor of a machines.list answer with the same sort and direction.`, [
    { field: "cursor", message: why },
  ]);
}

export function encodeCursor(sort: SortField, dir: "asc" | "desc", c: Cursor): string {
  return Buffer.from(JSON.stringify({ v: 1, s: sort, d: dir, k: c.k, i: c.id })).toString("base64url");
}

/** @throws AppError VALIDATION (field cursor) for anything but a cursor this server made for this sort and direction */
export function decodeCursor(text: string, sort: SortField, dir: "asc" | "desc"): Cursor {
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(text)) throw badCursor("not a machines.list cursor");
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw badCursor("not a machines.list cursor");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw badCursor("not a machines.list cursor");
  const o = v as Record<string, unknown>;
  if (o.v !== 1) throw badCursor("not a machines.list cursor");
  if (o.s !== sort || o.d !== dir) throw badCursor(`it continues a listing in another order, not ${sort} ${dir}`);
  const kinds = KEY_KINDS[sort];
  // No stored name, MAC or rack name holds a NUL (PostgreSQL's text cannot): a key with one is no position of ours.
  const keyOk = (x: unknown, i: number) =>
    kinds[i] === "text" ? typeof x === "string" && x.length <= 300 && !x.includes("\u0000") : typeof x === "number" && Number.isSafeInteger(x);
  if (!Array.isArray(o.k) || o.k.length !== kinds.length || !o.k.every(keyOk)) throw badCursor("its position is damaged");
  if (typeof o.i !== "number" || !Number.isSafeInteger(o.i) || o.i < 1) throw badCursor("its position is damaged");
  return { k: o.k as KeyValue[], id: o.i };
}

/** Rows strictly after the cursor in the order of `sort`/`dir` (then id ascending). */
function afterCursor(sort: SortField, dir: "asc" | "desc", c: Cursor, bind: Bind = asValue): SQL {
  const { keys, unique } = SORT_KEYS[sort];
  const terms = keys.map((expr, i) => ({ expr, v: bind(`key${i}`, c.k[i]!), op: dir === "asc" ? sql.raw(">") : sql.raw("<") }));
  if (!unique) terms.push({ expr: sql`${machines.id}`, v: bind("afterId", c.id), op: sql.raw(">") });
  const ors = terms.map((t, i) => and(...terms.slice(0, i).map((e) => sql`${e.expr} = ${e.v}`), sql`${t.expr} ${t.op} ${t.v}`)!);
  return ors.length === 1 ? ors[0]! : or(...ors)!;
}

/** The cursor that continues after machine `id` in the order of `sort`. */
function cursorAfter(db: Db, sort: SortField, dir: "asc" | "desc", id: number): string {
  const query = preparedFor(db, `machines.cursor|${sort}`, () => {
    const cols = Object.fromEntries(SORT_KEYS[sort].keys.map((k, i) => [`k${i}`, sql<KeyValue>`${k}`]));
    return db
      .select(cols)
      .from(machines)
      .leftJoin(nics, bootNic)
      .leftJoin(racks, eq(racks.id, machines.rackId))
      .where(eq(machines.id, sql.placeholder("id")))
      .prepare();
  });
  const row = query.get({ id })!;
  return encodeCursor(sort, dir, { k: SORT_KEYS[sort].keys.map((_, i) => row[`k${i}`]!), id });
}

/** How many machines match; the NIC join only when the text search looks at MACs and IPs. */
function countQuery(db: Db, where: SQL | undefined, q: string | undefined) {
  const countQuery = db.select({ n: sql<number>`count(*)` }).from(machines);
  return (q ? countQuery.leftJoin(nics, bootNic) : countQuery).where(where);
}

export type ListOptions = MachineFilter & { sort: SortField; dir: "asc" | "desc"; page: number; pageSize: number; cursor?: string };
export type RowListOptions = ListOptions & { fields?: readonly RowField[] };

/**
 * One page of the machine table, filtered and sorted in SQL. With `cursor` the page starts after the cursor's row
 * (keyset) instead of at an offset. A NUL in the search text (or the CPU model) matches nothing, on both databases.
 * @throws AppError VALIDATION (field cursor) for a cursor of another sort or direction, or not ours
 */
export async function listMachines(store: Store, opts: ListOptions): Promise<ListResult> {
  return (await listRows(store, opts)) as ListResult;
}

/** listMachines() with only `fields` (and id) in each row, and only the joins those need. */
export async function listRows(store: Store, opts: RowListOptions): Promise<ListResult<PartialRow>> {
  const cursor = opts.cursor !== undefined ? decodeCursor(opts.cursor, opts.sort, opts.dir) : undefined;
  if (matchesNothing(opts)) return { rows: [], total: 0, page: cursor ? 1 : opts.page, pageSize: opts.pageSize, nextCursor: null };
  if (store.dialect === "sqlite") {
    const db = sqliteDbOf(store);
    const wait = sqliteWait(store, db);
    if (wait) await wait;
    return listRowsSqlite(db, opts);
  }
  return listRowsPg(store, opts, cursor);
}

/** How many machines a filter matches (machines.count), with the list's cached count. */
export async function countMachines(store: Store, f: MachineFilter): Promise<number> {
  return (await listRows(store, { ...f, sort: "created", dir: "asc", page: 1, pageSize: 1, fields: ["id"] })).total;
}

/**
 * The rows a page skips, capped at 2^50: beyond every table, and still an integer both databases take (a page of
 * 10,000 at page 2^53 would be past SQLite's and PostgreSQL's 64-bit OFFSET, an error rather than an empty page).
 */
function offsetOf(o: { page: number; pageSize: number }): number {
  return Math.min((o.page - 1) * o.pageSize, 2 ** 50);
}

/** Text no stored value can hold (PostgreSQL's text cannot hold NUL; SQLite's LIKE would stop at it) matches nothing. */
export function matchesNothing(f: MachineFilter): boolean {
  return [f.q, f.cpuModel].some((t) => t !== undefined && t.includes("\u0000"));
}

/**
 * The SQLite list. Two steps: first the page's ids, joining only what the filter and the sort need (so skipped rows
 * of deep pages cost an index step, not five joins), then the page's rows with everything the table shows. A page
 * that is most of the table (an export, "all machines") is cheaper in one query.
 *
 * Its queries are prepared once per shape (server/db/prepared.ts) and then run with the request's values: drizzle
 * would otherwise build the same SQL text again for every page, which cost more than running it. The shape is the
 * sort, the direction, the fields, large page or not, and the placeholder names the filter and cursor bound.
 */
function listRowsSqlite(db: Db, opts: ListOptions & { fields?: readonly RowField[] }): ListResult<PartialRow> {
  const values: Record<string, string | number> = {};
  const names: string[] = [];
  const bind: Bind = (name, value) => {
    values[name] = value;
    names.push(name);
    return sql.placeholder(name) as unknown as typeof value;
  };
  const filter = filterConditions(opts, bind);
  const filterShape = names.join(",");
  const after = opts.cursor !== undefined ? afterCursor(opts.sort, opts.dir, decodeCursor(opts.cursor, opts.sort, opts.dir), bind) : undefined;
  const where = after ? and(filter, after) : filter;
  const big = opts.pageSize > 1000;
  const fieldsShape = opts.fields ? opts.fields.join(",") : "*";
  values.offset = after ? 0 : offsetOf(opts);
  // One row more than the page tells whether another page follows.
  values.limit = opts.pageSize + 1;
  const countKey = `machines.count|${opts.q ? "nics" : ""}|${filterShape}`;
  const counted = () => preparedFor(db, countKey, () => countQuery(db, filter, opts.q).prepare()).get(values)!.n;
  const total = cachedCount(db, `${countKey}|${JSON.stringify(names.map((n) => values[n]))}`, counted);
  const order = () => [...SORT_COLUMNS[opts.sort].map((c) => (opts.dir === "desc" ? desc(c) : asc(c))), asc(machines.id)];
  const shape = `${opts.sort}|${opts.dir}|${fieldsShape}|${names.join(",")}`;
  let rows: PartialRow[];
  if (big) {
    const query = preparedFor(db, `machines.rows|${shape}`, () => {
      const selected = selectRows(db, opts.fields);
      const map = selected.map;
      let q = selected.q;
      // The filter's text search and the sort may need joins the selected fields do not.
      if (opts.fields && (opts.q || opts.sort === "ip" || opts.sort === "mac") && !opts.fields.some((f) => f === "bootMac" || f === "ip")) {
        q = q.leftJoin(nics, bootNic);
      }
      if (opts.fields && opts.sort === "rack" && !opts.fields.includes("rackName")) q = q.leftJoin(racks, eq(racks.id, machines.rackId));
      return { map, query: q.where(where).orderBy(...order()).limit(sql.placeholder("limit")).offset(sql.placeholder("offset")).prepare() };
    });
    rows = query.map(query.query.values(values));
  } else {
    const idQuery = preparedFor(db, `machines.ids|${shape}`, () => {
      let q = db.select({ id: machines.id }).from(machines).$dynamic();
      if (opts.q || opts.sort === "ip" || opts.sort === "mac") q = q.leftJoin(nics, bootNic);
      if (opts.sort === "rack") q = q.leftJoin(racks, eq(racks.id, machines.rackId));
      return q.where(where).orderBy(...order()).limit(sql.placeholder("limit")).offset(sql.placeholder("offset")).prepare();
    });
    const ids = idQuery.all(values).map((r) => r.id);
    const position = new Map(ids.map((id, i) => [id, i]));
    // The page's ids as one JSON array: one statement for every page size.
    const rowQuery = preparedFor(db, `machines.page|${fieldsShape}`, () => {
      const { q, map } = selectRows(db, opts.fields);
      return { map, query: q.where(sql`${machines.id} IN (SELECT value FROM json_each(${sql.placeholder("ids")}))`).prepare() };
    });
    rows = ids.length ? rowQuery.map(rowQuery.query.values({ ids: JSON.stringify(ids) })).sort((a, b) => position.get(a.id)! - position.get(b.id)!) : [];
  }
  const more = rows.length > opts.pageSize;
  if (more) rows.pop();
  const last = rows.at(-1);
  const nextCursor = more && last ? (cursorFromRow(opts.sort, opts.dir, last) ?? cursorAfter(db, opts.sort, opts.dir, last.id)) : null;
  return { rows, total, page: after ? 1 : opts.page, pageSize: opts.pageSize, nextCursor };
}

/**
 * The cursor after `row` from the row itself, when the sort's keys are plain columns the row holds (name, created):
 * one query less per page. Other sorts, or rows without those fields (listRows' `fields`), return undefined.
 */
function cursorFromRow(sort: SortField, dir: "asc" | "desc", row: PartialRow): string | undefined {
  if (sort === "name" && typeof row.name === "string") return encodeCursor(sort, dir, { k: [row.name], id: row.id });
  if (sort === "created") return encodeCursor(sort, dir, { k: [row.id], id: row.id });
  return undefined;
}


/**
 * The filter's conditions through the Store, in either dialect (the PostgreSQL list, the selections of bulk actions:
 * server/machines/selection.ts): the SQLite list's semantics. Text is matched case-insensitively (ASCII on SQLite,
 * ILIKE on PostgreSQL) and literally (LIKE wildcards escaped). Call `matchesNothing` first: a NUL is not searched.
 */
export function storeFilterConditions(d: Dialect, t: Tables, f: MachineFilter): SQL | undefined {
  const { machines: m, nics: n } = t;
  const conds: (SQL | undefined)[] = [];
  if (f.states?.length) conds.push(inArray(m.state, f.states));
  if (f.rackId) conds.push(eq(m.rackId, f.rackId));
  if (f.power) conds.push(eq(m.powerState, f.power));
  if (f.maintenance !== undefined) conds.push(eq(m.maintenance, f.maintenance));
  if (f.q) {
    const mac = normalizeMac(f.q);
    const partialMac = /^[0-9a-f]{2}([-:][0-9a-f]{1,2})+[-:]?$/i.test(f.q) ? f.q.toLowerCase().replaceAll("-", ":") : null;
    const pat = `%${escapeLike(f.q.toLowerCase())}%`;
    conds.push(or(likeCi(d, m.name, pat), likeCi(d, n.ip, pat), mac ? eq(n.mac, mac) : likeCi(d, n.mac, partialMac ? `%${escapeLike(partialMac)}%` : pat)));
  }
  // Inventory filters read the agent's JSON; machines without an inventory never match them.
  if (f.minMemoryGiB !== undefined) conds.push(sql`${jsonPathNumber(d, m.inventory, ["memoryBytes"])} >= ${Math.round(f.minMemoryGiB * 2 ** 30)}`);
  if (f.minDisks !== undefined) conds.push(sql`${jsonPathArrayLength(d, m.inventory, ["disks"])} >= ${f.minDisks}`);
  if (f.cpuModel) conds.push(likeCi(d, jsonPathText(d, m.inventory, ["cpu", "model"]), `%${escapeLike(f.cpuModel.toLowerCase())}%`));
  const present = conds.filter((c): c is SQL => c !== undefined);
  return present.length ? and(...present) : undefined;
}

/** The boot NIC of each machine (at most one: nics_one_boot). */
const bootNicOf = (t: Tables) => and(eq(t.nics.machineId, t.machines.id), eq(t.nics.isBoot, true));

/** Text compared byte-wise, as SQLite's BINARY collation compares (sql.ts). */
const bytewise = (x: SQLWrapper) => bytewisePg("postgres", x);

/**
 * PostgreSQL's sort keys: SORT_KEYS in pg terms. They order exactly as the SQLite list does: text byte-wise; NULL
 * (no rack, no U, no IP, no MAC) below every value through the same COALESCE (PostgreSQL would put NULL last in
 * ascending order); then the id ascending. The ORDER BY and the cursor's comparisons use the same expressions.
 */
function pgSortKeys(t: Tables, sort: SortField): SQL[] {
  const { machines: m, nics: n, racks: r } = t;
  switch (sort) {
    case "name":
      return [bytewise(m.name)];
    case "state":
      return [stateOrder, bytewise(m.name)];
    case "power":
      return [bytewise(m.powerState), bytewise(m.name)];
    case "rack":
      return [bytewise(sql`coalesce(${r.name}, '')`), sql`coalesce(${m.uPosition}, -1)`];
    case "ip":
      // ip_num() is drizzle-pg/0001's, the same function SQLite registers; bigint.
      return [sql`coalesce(ip_num(${n.ip}), -1)`];
    case "mac":
      return [bytewise(sql`coalesce(${n.mac}, '')`)];
    case "created":
      return [sql`${m.id}`];
  }
}

/** The PostgreSQL row columns (MachineRow's fields); bmcLastSeen is a Date here, epoch ms in the row. */
function pgRowColumns(t: Tables) {
  return {
    id: t.machines.id,
    name: t.machines.name,
    state: t.machines.state,
    powerState: t.machines.powerState,
    powerPending: t.machines.powerPending,
    maintenance: t.machines.maintenance,
    rackId: t.machines.rackId,
    rackName: t.racks.name,
    uPosition: t.machines.uPosition,
    uHeight: t.machines.uHeight,
    firmware: t.machines.firmware,
    bootFirmware: t.machines.bootFirmware,
    bootMac: t.nics.mac,
    ip: t.nics.ip,
    osProfileName: t.osProfiles.name,
    lastError: t.machines.lastError,
    bmcReachable: t.bmcs.reachable,
    bmcLastSeen: t.bmcs.lastSeen,
  } satisfies Record<RowField, unknown>;
}

/**
 * The PostgreSQL list: one query per page (the planner joins after limiting where it pays), the sort keys of the
 * page's last row selected with it for the next cursor, and the count cached per database snapshot (count-cache.ts).
 */
async function listRowsPg(store: Store, opts: RowListOptions, cursor: Cursor | undefined): Promise<ListResult<PartialRow>> {
  const t = store.t;
  const { machines: m } = t;
  const filter = storeFilterConditions(store.dialect, t, opts);
  const keys = pgSortKeys(t, opts.sort);
  const kinds = KEY_KINDS[opts.sort];
  let after: SQL | undefined;
  if (cursor) {
    const op = sql.raw(opts.dir === "asc" ? ">" : "<");
    const terms = keys.map((expr, i) => ({ expr, v: cursor.k[i]!, op }));
    if (!SORT_KEYS[opts.sort].unique) terms.push({ expr: sql`${m.id}`, v: cursor.id, op: sql.raw(">") });
    const ors = terms.map((x, i) => and(...terms.slice(0, i).map((e) => sql`${e.expr} = ${e.v}`), sql`${x.expr} ${x.op} ${x.v}`)!);
    after = ors.length === 1 ? ors[0]! : or(...ors)!;
  }
  const needsNic = Boolean(opts.q);
  const countKey = `machines.count|${JSON.stringify([opts.states, opts.rackId, opts.power, opts.maintenance, opts.q, opts.minMemoryGiB, opts.minDisks, opts.cpuModel])}`;
  // The count and the page in parallel, on two of the pool's connections.
  const counting = cachedCountPg(store, countKey, async () => {
    let q = store.db.select({ n: sql<number>`count(*)::int`, version: sql<string>`pg_current_snapshot()::text` }).from(m).$dynamic();
    if (needsNic) q = q.leftJoin(t.nics, bootNicOf(t));
    const [r] = await q.where(filter);
    return { n: Number(r!.n), version: r!.version };
  });

  const all = pgRowColumns(t);
  const fields = opts.fields;
  const has = (...f: RowField[]) => !fields || f.some((x) => fields.includes(x));
  /** The row columns (all, or `fields` and id), and the joins they need besides `joined`. */
  const rowQuery = (extra: Record<string, unknown>, joined: { nics: boolean; racks: boolean }) => {
    const cols: Record<string, unknown> = fields ? { id: all.id } : { ...all };
    for (const f of fields ?? []) cols[f] = all[f];
    Object.assign(cols, extra);
    let q = store.db.select(cols as { id: typeof m.id }).from(m).$dynamic();
    if (joined.nics || has("bootMac", "ip")) q = q.leftJoin(t.nics, bootNicOf(t));
    if (joined.racks || has("rackName")) q = q.leftJoin(t.racks, eq(t.racks.id, m.rackId));
    if (has("osProfileName")) q = q.leftJoin(t.osProfiles, eq(t.osProfiles.id, m.osProfileId));
    if (has("bmcReachable", "bmcLastSeen")) q = q.leftJoin(t.bmcs, eq(t.bmcs.machineId, m.id));
    return q;
  };
  const keyCols = Object.fromEntries(keys.map((k, i) => [`__k${i}`, sql`${k}`]));
  const order = [...keys.map((k) => (opts.dir === "desc" ? desc(k) : asc(k))), asc(m.id)];
  const where = and(filter, after);
  const offset = cursor ? 0 : offsetOf(opts);
  const joins = { nics: Boolean(opts.q) || opts.sort === "ip" || opts.sort === "mac", racks: opts.sort === "rack" };
  const strip = (r: Record<string, unknown>) => {
    for (let i = 0; i < keys.length; i++) delete r[`__k${i}`];
    if ("bmcLastSeen" in r) r.bmcLastSeen = r.bmcLastSeen instanceof Date ? r.bmcLastSeen.getTime() : null;
    return r as PartialRow;
  };
  const [total, { page, rows }] = await Promise.all([counting, pageOf()]);
  // The cursor continues after the page's last row as the ids query saw it (its keys, even if it has gone since).
  const last = page.length > opts.pageSize ? page[opts.pageSize - 1] : undefined;
  const nextCursor = last ? encodeCursor(opts.sort, opts.dir, { k: kinds.map((kind, i) => (kind === "int" ? Number(last[`__k${i}`]) : String(last[`__k${i}`]))), id: last.id as number }) : null;
  return { rows, total, page: cursor ? 1 : opts.page, pageSize: opts.pageSize, nextCursor };

  /** One row more than the page (it tells whether another page follows) with its sort keys, and the page's rows. */
  async function pageOf(): Promise<{ page: Record<string, unknown>[]; rows: PartialRow[] }> {
    let page: Record<string, unknown>[];
    let rows: PartialRow[];
    if (opts.pageSize > 1000) {
      // Most of the table (an export page, "all machines"): one query.
      page = await rowQuery(keyCols, joins).where(where).orderBy(...order).limit(opts.pageSize + 1).offset(offset);
      rows = page.slice(0, opts.pageSize).map((r) => ({ ...r })).map(strip);
    } else {
      // As on SQLite, the page's ids (and sort keys) first, joining only what the filter and the sort need, then its rows.
      let idq = store.db.select({ id: m.id, ...keyCols }).from(m).$dynamic();
      if (joins.nics) idq = idq.leftJoin(t.nics, bootNicOf(t));
      if (joins.racks) idq = idq.leftJoin(t.racks, eq(t.racks.id, m.rackId));
      page = await idq.where(where).orderBy(...order).limit(opts.pageSize + 1).offset(offset);
      const ids = page.slice(0, opts.pageSize).map((r) => r.id as number);
      const found = ids.length ? ((await rowQuery({}, { nics: false, racks: false }).where(inArray(m.id, ids))) as Record<string, unknown>[]) : [];
      const byId = new Map(found.map((r) => [r.id as number, r]));
      // In the ids' order; a machine deleted between the two queries is left out.
      rows = ids.flatMap((id) => (byId.has(id) ? [strip(byId.get(id)!)] : []));
    }
    return { page, rows };
  }
}
