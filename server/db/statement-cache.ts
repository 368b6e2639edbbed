import type Database from "better-sqlite3";

/**
 * A bounded map that forgets the least recently used entry first (a Map keeps insertion order: a hit moves its
 * entry to the end, and the first entry is the oldest).
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`LruMap size must be a positive integer, got ${max}`);
  }
  get size(): number {
    return this.map.size;
  }
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, value);
  }
}

/**
 * drizzle asks better-sqlite3 to compile a new statement for every query it runs; compiling is a good part of a
 * small query's cost. Reuse statements by SQL text, the `max` most recently used kept.
 *
 * A statement object carries modes that stick to it: drizzle turns `raw()` on before reading rows of a select with
 * fields, and another caller may use `pluck()` or `expand()`. Every hit is handed out with the three modes off, as a
 * fresh statement would be; a caller that wants a mode sets it just before it runs (drizzle does). A statement still
 * being iterated (`busy`) is never shared: the caller gets a fresh, uncached one.
 */
export function cacheStatements(sqlite: Database.Database, max = 500): void {
  const cache = new LruMap<string, Database.Statement>(max);
  const prepare = sqlite.prepare.bind(sqlite);
  sqlite.prepare = ((source: string) => {
    const hit = cache.get(source);
    if (hit && !hit.busy) {
      if (hit.reader) hit.raw(false).pluck(false).expand(false);
      return hit;
    }
    const stmt = prepare(source);
    if (!hit) cache.set(source, stmt);
    return stmt;
  }) as typeof sqlite.prepare;
}
