/**
 * PostgreSQL only: what the list must do there beyond queries.test.ts (which runs on both stores).
 * - Text orders byte-wise whatever the database's collation: the test cluster is initdb'd with the C locale, so here
 *   the columns get an ICU collation that ignores punctuation and case first (as en_US.UTF-8 databases do).
 * - The count cached by one process follows another process's commits (its own pool here), and not before they commit.
 */
import { eq, inArray, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as pgSchema from "../db/pg/schema";
import { pgStore, type Store } from "../db/store";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { listMachines } from "./queries";
import { matchingIdsIn } from "./selection";

let h: Harness;
let other: Store;
const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const NAMES = ["ab", "a-c", "a.d", "a0", "b", "a-b", "aa-x", "a--z", "ac"];

beforeAll(async () => {
  h = createHarness();
  if (h.store.dialect !== "postgres") throw new Error("queries.pg.test.ts runs in the vitest project postgres");
  const url = (h.store.db as unknown as { $client: pg.Pool }).$client.options.connectionString!;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  other = pgStore(drizzle<typeof pgSchema, pg.Pool>(pool, { schema: pgSchema }));
  // Punctuation ignored at first, lower case before upper: "ab" < "a-c" and "rack-a" < "Rack-B" (byte-wise the reverse).
  await h.store.db.execute(sql`CREATE COLLATION rh_test_shifted (provider = icu, locale = 'und-u-ka-shifted')`);
  for (const [table, column] of [["machines", "name"], ["racks", "name"], ["nics", "mac"], ["machines", "power_state"]]) {
    await h.store.db.execute(sql.raw(`ALTER TABLE ${table} ALTER COLUMN ${column} TYPE text COLLATE rh_test_shifted`));
  }
  const racks = [];
  for (const name of ["Rack-B", "rack-a", "rack_c", "RACK-D"]) racks.push((await h.admin.racks.create({ name })).id);
  for (const [i, name] of NAMES.entries()) {
    await h.operator.machines.enroll(machineInput(i + 1, { name, rackId: racks[i % racks.length], uPosition: 10 - i }));
  }
});
afterAll(async () => {
  await other?.close();
  h.close();
});

describe("byte-wise order under another database collation", () => {
  it("the database's own ORDER BY differs here (so the test can tell)", async () => {
    const r = await h.store.db.execute<{ name: string }>(sql`SELECT name FROM machines ORDER BY name`);
    expect(r.rows.map((x) => x.name)).not.toEqual([...NAMES].sort(bytewise));
  });

  it("names, racks and cursors order byte-wise, as on SQLite", async () => {
    for (const dir of ["asc", "desc"] as const) {
      const want = [...NAMES].sort(bytewise);
      if (dir === "desc") want.reverse();
      const all = await listMachines(h.store, { sort: "name", dir, page: 1, pageSize: 100 });
      expect(all.rows.map((r) => r.name)).toEqual(want);
      const walked: string[] = [];
      let cursor: string | undefined;
      do {
        const p = await listMachines(h.store, { sort: "name", dir, page: 1, pageSize: 2, cursor });
        walked.push(...p.rows.map((r) => r.name));
        cursor = p.nextCursor ?? undefined;
      } while (cursor);
      expect(walked).toEqual(want);
      const offsets = [];
      for (let page = 1; page <= 5; page++) offsets.push(...(await listMachines(h.store, { sort: "name", dir, page, pageSize: 2 })).rows.map((r) => r.name));
      expect(offsets).toEqual(want);
    }
    const byRack = (await listMachines(h.store, { sort: "rack", dir: "asc", page: 1, pageSize: 100 })).rows;
    expect(byRack.map((r) => [r.rackName, r.uPosition])).toEqual(
      byRack.map((r) => [r.rackName, r.uPosition]).sort((a, b) => bytewise(String(a[0]), String(b[0])) || Number(a[1]) - Number(b[1])),
    );
    expect(byRack[0]!.rackName).toBe("RACK-D");
    const walked: number[] = [];
    let cursor: string | undefined;
    do {
      const p = await listMachines(h.store, { sort: "rack", dir: "asc", page: 1, pageSize: 3, cursor });
      walked.push(...p.rows.map((r) => r.id));
      cursor = p.nextCursor ?? undefined;
    } while (cursor);
    expect(walked).toEqual(byRack.map((r) => r.id));
  });

  it("a filter selection (bulk actions) comes in byte-wise name order too", async () => {
    const ids = await matchingIdsIn(h.store, { q: "a" });
    const names = (await h.store.db.select({ id: h.store.t.machines.id, name: h.store.t.machines.name }).from(h.store.t.machines)).filter((r) => ids.includes(r.id));
    const byId = new Map(names.map((r) => [r.id, r.name]));
    expect(ids.map((id) => byId.get(id))).toEqual(NAMES.filter((n) => n.includes("a")).sort(bytewise));
  });
});

describe("the cached count with two processes", () => {
  const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 2 };
  it("follows the other process's commit, and sees nothing of it before", async () => {
    const m = h.store.t.machines;
    const total = async () => (await listMachines(h.store, { ...base, states: ["enrolled"] })).total;
    const before = await total();
    expect(before).toBe(NAMES.length);
    expect(await total()).toBe(before);
    const ids = (await other.db.select({ id: m.id }).from(m).limit(3)).map((r) => r.id);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let written!: () => void;
    const wrote = new Promise<void>((r) => (written = r));
    const tx = other.transaction(async (t) => {
      await t.update(m).set({ state: "manageable" }).where(inArray(m.id, ids));
      written();
      await gate;
    });
    await wrote;
    expect(await total()).toBe(before);
    release();
    await tx;
    expect(await total()).toBe(before - 3);
    expect((await listMachines(other, { ...base, states: ["enrolled"] })).total).toBe(before - 3);
    await other.db.update(m).set({ state: "enrolled" }).where(eq(m.state, "manageable"));
    expect(await total()).toBe(before);
  });
});
