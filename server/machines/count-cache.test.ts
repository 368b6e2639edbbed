/**
 * SQLite's count cache (cachedCount): its version is the connection's total_changes() and the file's data_version,
 * so it follows this connection's writes, another connection's (another process) and never caches in a transaction.
 * The list's totals on both stores: queries.test.ts.
 */
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "../testing/harness";
import { sqliteStore } from "../db/store";
import { machineInput } from "../testing/fixtures";
import { cachedCount } from "./count-cache";
import { listMachines } from "./queries";

let h: Harness;
beforeAll(async () => {
  h = createHarness();
  for (let i = 1; i <= 6; i++) await h.operator.machines.enroll(machineInput(i));
});
afterAll(() => h.close());

const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 5 };
const truth = (state: string) => (h.db.$client.prepare("SELECT count(*) AS n FROM machines WHERE state = ?").get(state) as { n: number }).n;
const total = async () => (await listMachines(sqliteStore(h.db), { ...base, states: ["enrolled"] })).total;

describe("cachedCount (SQLite)", () => {
  it("counts once while nothing changes, and again after any write", () => {
    let runs = 0;
    const count = () => (runs++, 7);
    expect(cachedCount(h.db, "test|a", count)).toBe(7);
    expect(cachedCount(h.db, "test|a", count)).toBe(7);
    expect(runs).toBe(1);
    expect(cachedCount(h.db, "test|b", count)).toBe(7);
    expect(runs).toBe(2);
    h.db.$client.prepare("UPDATE machines SET updated_at = updated_at WHERE id = (SELECT min(id) FROM machines)").run();
    cachedCount(h.db, "test|a", count);
  });

  it("the total follows a commit by another connection (another process)", async () => {
    const other = new Database(path.join(h.dataDir, "rackhand.db"));
    try {
      const before = await total();
      const id = (other.prepare("SELECT id FROM machines WHERE state = 'enrolled' ORDER BY id LIMIT 1").get() as { id: number }).id;
      other.prepare("UPDATE machines SET state = 'manageable' WHERE id = ?").run(id);
      expect(await total()).toBe(before - 1);
      other.prepare("UPDATE machines SET state = 'enrolled' WHERE id = ?").run(id);
      expect(await total()).toBe(before);
    } finally {
      other.close();
    }
  });

  it("inside a transaction it always counts, so a rolled-back change never sticks", () => {
    let runs = 0;
    const count = () => (runs++, truth("enrolled"));
    const before = cachedCount(h.db, "test|tx", count);
    expect(() =>
      h.db.transaction(() => {
        h.db.$client.prepare("UPDATE machines SET state = 'manageable' WHERE state = 'enrolled'").run();
        expect(cachedCount(h.db, "test|tx", count)).toBe(0);
        expect(runs).toBe(2);
        expect(cachedCount(h.db, "test|tx", count)).toBe(0);
        expect(runs).toBe(3);
        throw new Error("roll back");
      }),
    ).toThrow("roll back");
    expect(cachedCount(h.db, "test|tx", count)).toBe(before);
    expect(before).toBe(truth("enrolled"));
  });
});
