import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { openDatabase } from "./client";
import { forUpdate } from "./sql";
import { lockMachines, Mutex, sqliteStore, type Store } from "./store";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Through the harness: SQLite in the `sqlite` project, PostgreSQL in the `postgres` one (RACKHAND_TEST_STORE).
describe("Store.transaction on the harness store", () => {
  let h: Harness;
  beforeAll(() => {
    h = createHarness();
  });
  afterAll(() => h.close());
  const rack = (name: string) => ({ name, createdAt: new Date(), updatedAt: new Date() });

  it("is the store the project asks for", () => {
    expect(h.store.dialect).toBe(testStoreKind());
  });

  it("commits what the callback wrote and returns its value", async () => {
    const { racks } = h.store.t;
    const id = await h.store.transaction(async (tx) => (await tx.insert(racks).values(rack("tx-commit")).returning({ id: racks.id }))[0]!.id);
    expect(await h.store.db.select({ name: racks.name }).from(racks).where(eq(racks.id, id))).toEqual([{ name: "tx-commit" }]);
  });

  it("rolls back everything when the callback throws, and rethrows", async () => {
    const { racks } = h.store.t;
    const boom = new Error("boom");
    await expect(
      h.store.transaction(async (tx) => {
        await tx.insert(racks).values(rack("tx-rollback-1"));
        await tx.insert(racks).values(rack("tx-rollback-2"));
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await h.store.db.select().from(racks).where(sql`${racks.name} LIKE 'tx-rollback-%'`)).toEqual([]);
  });

  it("rolls back on a failed statement (unique name) and the store stays usable", async () => {
    const { racks } = h.store.t;
    await h.store.db.insert(racks).values(rack("tx-unique"));
    await expect(
      h.store.transaction(async (tx) => {
        await tx.insert(racks).values(rack("tx-unique-other"));
        await tx.insert(racks).values(rack("tx-unique"));
      }),
    ).rejects.toThrow();
    expect(await h.store.db.select().from(racks).where(eq(racks.name, "tx-unique-other"))).toEqual([]);
    await h.store.transaction(async (tx) => tx.insert(racks).values(rack("tx-after-failure")));
  });

  it("interleaved read-then-write transactions lose no update (locked rows on PostgreSQL, one writer on SQLite)", async () => {
    const { leases } = h.store.t;
    await h.store.db.insert(leases).values({ name: "counter", holder: "t", epoch: 0, expiresAt: new Date() });
    await Promise.all(
      Array.from({ length: 25 }, () =>
        h.store.transaction(async (tx) => {
          const [row] = await forUpdate(h.store.dialect, tx.select().from(leases).where(eq(leases.name, "counter")));
          await new Promise((r) => setImmediate(r)); // let the others run meanwhile
          await tx.update(leases).set({ epoch: row!.epoch + 1 }).where(eq(leases.name, "counter"));
        }),
      ),
    );
    expect((await h.store.db.select().from(leases).where(eq(leases.name, "counter")))[0]!.epoch).toBe(25);
  });

  it("lockMachines returns the existing ids, ascending, inside a transaction", async () => {
    const { machines } = h.store.t;
    const made = await h.store.db
      .insert(machines)
      .values([3, 1, 2].map((i) => ({ name: `lock-m${i}`, createdAt: new Date(), updatedAt: new Date() })))
      .returning({ id: machines.id });
    const ids = made.map((m) => m.id);
    const got = await h.store.transaction((tx) => lockMachines(tx, [...ids, 999_999, ids[0]!]));
    expect(got).toEqual([...ids].sort((a, b) => a - b));
  });
});

describe("SQLite Store: BEGIN IMMEDIATE under an async mutex", () => {
  let store: Store;
  beforeAll(() => {
    store = sqliteStore(openDatabase(":memory:"));
  });
  afterAll(() => store.close());
  const rack = (name: string) => ({ name, createdAt: new Date(), updatedAt: new Date() });

  it("no query of another caller runs inside an open transaction: it waits for the commit and is not rolled back with it", async () => {
    const { racks } = store.t;
    const order: string[] = [];
    const tx = store.transaction(async (t) => {
      await t.insert(racks).values(rack("inside"));
      order.push("tx wrote");
      await sleep(50); // held open across timers: other callers get the event loop meanwhile
      order.push("tx throws");
      throw new Error("rolled back");
    });
    // Started while the transaction is open.
    const outsideWrite = (async () => {
      await sleep(5);
      await store.db.insert(racks).values(rack("outside"));
      order.push("outside wrote");
    })();
    const outsideRead = (async () => {
      await sleep(10);
      const names = (await store.db.select({ name: racks.name }).from(racks)).map((r) => r.name);
      order.push(`outside read ${names.join(",") || "nothing"}`);
    })();
    await expect(tx).rejects.toThrow("rolled back");
    await Promise.all([outsideWrite, outsideRead]);
    expect(order.slice(0, 2)).toEqual(["tx wrote", "tx throws"]);
    expect(order).toContain("outside wrote");
    // The uncommitted row was never seen, and the outside write survived the rollback.
    expect(order.find((o) => o.startsWith("outside read"))).not.toContain("inside");
    expect((await store.db.select({ name: racks.name }).from(racks)).map((r) => r.name)).toEqual(["outside"]);
  });

  it("transactions run one at a time, in the order they were asked for", async () => {
    const log: string[] = [];
    await Promise.all(
      [1, 2, 3].map((i) =>
        store.transaction(async () => {
          log.push(`begin ${i}`);
          await sleep(5);
          log.push(`end ${i}`);
        }),
      ),
    );
    expect(log).toEqual(["begin 1", "end 1", "begin 2", "end 2", "begin 3", "end 3"]);
  });

  it("a synchronous query through store.db while a transaction is open is refused", async () => {
    const { racks } = store.t;
    let caught: unknown;
    await store.transaction(async () => {
      try {
        (store.db.select().from(racks) as unknown as { all(): unknown }).all();
      } catch (err) {
        caught = err;
      }
    });
    expect(String(caught)).toMatch(/synchronous \.all\(\) while a Store transaction is open/);
  });

  it("the same database gives the same store (one mutex per connection)", () => {
    const db = openDatabase(":memory:");
    expect(sqliteStore(db)).toBe(sqliteStore(db));
    db.$client.close();
  });
});

describe("Mutex", () => {
  it("hands the lock over in order and reports idle", async () => {
    const m = new Mutex();
    const r1 = await m.lock();
    const got: number[] = [];
    const p2 = m.lock().then((r) => (got.push(2), r));
    const p3 = m.lock().then((r) => (got.push(3), r));
    expect(m.locked).toBe(true);
    await sleep(1);
    expect(got).toEqual([]);
    r1();
    (await p2)();
    (await p3)();
    await m.idle();
    expect(got).toEqual([2, 3]);
    expect(m.locked).toBe(false);
  });
});
