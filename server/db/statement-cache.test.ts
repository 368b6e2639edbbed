import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { preparedFor } from "./prepared";
import { cacheStatements, LruMap } from "./statement-cache";

describe("LruMap", () => {
  it("forgets the least recently used entry, and a read counts as a use", () => {
    const m = new LruMap<string, number>(2);
    m.set("a", 1);
    m.set("b", 2);
    expect(m.get("a")).toBe(1);
    m.set("c", 3);
    expect(m.get("b")).toBeUndefined();
    expect(m.get("a")).toBe(1);
    expect(m.get("c")).toBe(3);
    expect(m.size).toBe(2);
  });

  it("replacing a key does not evict another", () => {
    const m = new LruMap<string, number>(2);
    m.set("a", 1);
    m.set("b", 2);
    m.set("a", 10);
    expect([m.get("a"), m.get("b"), m.size]).toEqual([10, 2, 2]);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses size %s", (n) => {
    expect(() => new LruMap(n)).toThrow(/positive integer/);
  });
});

describe("cacheStatements", () => {
  const sqlite = new Database(":memory:");
  cacheStatements(sqlite, 3);
  sqlite.exec("create table t (a integer, b text); insert into t values (1, 'x'), (2, 'y'), (3, 'z')");
  afterAll(() => sqlite.close());

  it("hands out the same statement for the same SQL text", () => {
    expect(sqlite.prepare("select a from t")).toBe(sqlite.prepare("select a from t"));
  });

  it("resets raw, pluck and expand on every hit", () => {
    const q = "select a, b from t where a = ?";
    sqlite.prepare(q).raw(true);
    expect(sqlite.prepare(q).get(1)).toEqual({ a: 1, b: "x" });
    sqlite.prepare(q).pluck(true);
    expect(sqlite.prepare(q).get(2)).toEqual({ a: 2, b: "y" });
    sqlite.prepare(q).expand(true);
    expect(sqlite.prepare(q).get(3)).toEqual({ a: 3, b: "z" });
  });

  it("never shares a statement that is still being iterated", () => {
    const q = "select a from t order by a";
    const it1 = sqlite.prepare(q).iterate();
    expect(it1.next().value).toEqual({ a: 1 });
    const other = sqlite.prepare(q);
    expect(other.busy).toBe(false);
    expect(other.all()).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect([...it1]).toEqual([{ a: 2 }, { a: 3 }]);
  });

  it("keeps at most `max` statements, dropping the least recently used", () => {
    const s1 = sqlite.prepare("select 1");
    sqlite.prepare("select 2");
    sqlite.prepare("select 3");
    expect(sqlite.prepare("select 1")).toBe(s1);
    sqlite.prepare("select 4"); // evicts "select 2", the least recently used
    expect(sqlite.prepare("select 1")).toBe(s1);
    const s2 = sqlite.prepare("select 2");
    expect(sqlite.prepare("select 2")).toBe(s2);
  });
});

describe("preparedFor", () => {
  it("builds once per database and key", () => {
    const a = {};
    const b = {};
    let builds = 0;
    const build = () => ({ n: ++builds });
    const first = preparedFor(a, "k", build);
    expect(preparedFor(a, "k", build)).toBe(first);
    expect(preparedFor(a, "other", build)).not.toBe(first);
    expect(preparedFor(b, "k", build)).not.toBe(first);
    expect(builds).toBe(3);
  });

  it("is bounded per database", () => {
    const db = {};
    let builds = 0;
    for (let i = 0; i < 5; i++) preparedFor(db, `k${i}`, () => ++builds, 3);
    preparedFor(db, "k4", () => ++builds, 3);
    expect(builds).toBe(5);
    preparedFor(db, "k0", () => ++builds, 3);
    expect(builds).toBe(6);
  });
});
