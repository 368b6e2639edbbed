import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "./client";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-db-"));
const db = openDatabase(path.join(dir, "rackhand.db"));
afterAll(() => {
  db.$client.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("openDatabase", () => {
  it("uses WAL, foreign keys and applies every migration", () => {
    expect(db.$client.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.$client.pragma("foreign_keys", { simple: true })).toBe(1);
    const tables = db.$client.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[];
    for (const t of ["racks", "machines", "nics", "bmcs", "os_profiles", "jobs", "steps", "batches", "log_lines", "events", "users", "sessions", "agent_tokens", "settings"]) {
      expect(tables.map((x) => x.name)).toContain(t);
    }
  });

  it("reuses prepared statements, and a statement used in raw mode answers in object mode next time", () => {
    const a = db.$client.prepare("select 1 as x");
    expect(a.raw().get()).toEqual([1]);
    const b = db.$client.prepare("select 1 as x");
    expect(b).toBe(a);
    expect(b.get()).toEqual({ x: 1 });
  });

  it("sorts IPv4 addresses numerically with ip_num()", () => {
    const rows = db.$client
      .prepare("select v from (select '10.0.0.10' v union select '10.0.0.9' union select '9.255.0.1' union select null) order by ip_num(v)")
      .pluck()
      .all();
    expect(rows).toEqual([null, "9.255.0.1", "10.0.0.9", "10.0.0.10"]);
  });
});

describe("statement reuse", () => {
  it("resets pluck mode too", () => {
    const a = db.$client.prepare("select 2 as y");
    expect(a.pluck().get()).toBe(2);
    expect(db.$client.prepare("select 2 as y").get()).toEqual({ y: 2 });
  });
});
