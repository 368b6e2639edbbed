import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterAll, describe, expect, it } from "vitest";
import { migrationsFolder, openDatabase } from "./client";

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

describe("migration 0002 (install_done_at)", () => {
  it("moves an installer report out of a job's params into its own column", () => {
    // A database as the first two migrations left it, with a job whose params hold the report.
    const old = fs.mkdtempSync(path.join(dir, "m-"));
    fs.cpSync(migrationsFolder(), old, { recursive: true });
    const journal = JSON.parse(fs.readFileSync(path.join(old, "meta/_journal.json"), "utf8"));
    journal.entries = journal.entries.filter((e: { idx: number }) => e.idx < 2);
    fs.writeFileSync(path.join(old, "meta/_journal.json"), JSON.stringify(journal));
    const file = path.join(dir, "old.db");
    const sqlite = new Database(file);
    migrate(drizzle(sqlite), { migrationsFolder: old });
    sqlite.prepare("insert into machines (id, name, state, created_at, updated_at) values (1, 'm1', 'deploying', 0, 0)").run();
    const insertJob = sqlite.prepare("insert into jobs (id, machine_id, kind, state, params, created_at) values (?, 1, 'deploy_installer', ?, ?, 0)");
    insertJob.run(1, "failed", JSON.stringify({ osProfileId: 3, installDoneAt: 1_700_000_000_123 }));
    insertJob.run(2, "running", JSON.stringify({ osProfileId: 3 }));
    sqlite.close();

    const db2 = openDatabase(file);
    const rows = db2.$client.prepare("select id, params, install_done_at as at from jobs order by id").all();
    expect(rows).toEqual([
      { id: 1, params: JSON.stringify({ osProfileId: 3 }), at: 1_700_000_000_123 },
      { id: 2, params: JSON.stringify({ osProfileId: 3 }), at: null },
    ]);
    db2.$client.close();
  });
});

describe("file modes", () => {
  it("creates the database 0600 (WAL and SHM too) and tightens an existing installation's 0755 dir and 0644 files", () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-mode-"));
    try {
      const dataDir = path.join(d, "data");
      const file = path.join(dataDir, "rackhand.db");
      const fresh = openDatabase(file);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) expect((fs.statSync(f).mode & 0o777).toString(8), f).toBe("600");
      expect((fs.statSync(dataDir).mode & 0o777).toString(8)).toBe("700");
      fresh.$client.close();
      // An older installation: world-readable files in a world-readable directory.
      fs.chmodSync(dataDir, 0o755);
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(`${file}-wal`, "");
      fs.chmodSync(`${file}-wal`, 0o644);
      const again = openDatabase(file);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) expect((fs.statSync(f).mode & 0o777).toString(8), f).toBe("600");
      expect((fs.statSync(dataDir).mode & 0o777).toString(8)).toBe("700");
      again.$client.close();
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
