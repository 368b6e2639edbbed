/** The PostgreSQL Store against a real server: retries, row locks, rollback, and the dialect fragments of sql.ts on both databases. */
import { eq, sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgCluster, type PgCluster } from "../../testing/pg-cluster";
import { openDatabase } from "../client";
import { escapeLike, forUpdate, greatest, jsonArrayLength, jsonText, least, likeCi } from "../sql";
import { lockMachines, openStore, pgErrorCode, pgStore, sqliteStore, type Store } from "../store";
import { openPgDatabase } from "./client";
import { LoginThrottle } from "../../auth/throttle";
import { updateUser } from "../../auth/users";
import type { Domain } from "../../context";
import { EventBus } from "../../events/bus";

let cluster: PgCluster;
let url: string;
let store: Store;
beforeAll(async () => {
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  store = pgStore(await openPgDatabase(url, { max: 6 }));
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  await store?.close().catch(() => {});
});

/** A promise with its resolve function: one side of a rendezvous between two transactions. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}
const rack = (name: string) => ({ name, createdAt: new Date(), updatedAt: new Date() });

describe("PostgreSQL Store.transaction", () => {
  it("retries a real serialization failure (40001) and then succeeds", async () => {
    const { racks } = store.t;
    await store.db.insert(racks).values(rack("ser-seed"));
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    const readDone = gate();
    const otherDone = gate();
    let attempts = 0;
    const otherRun = runOther();
    try {
      const result = await store.transaction(
        async (tx) => {
          attempts++;
          const [{ n }] = (await tx.select({ n: sql<number>`count(*)::int` }).from(racks).where(sql`${racks.name} LIKE 'ser-%'`)) as [{ n: number }];
          if (attempts === 1) {
            readDone.open();
            await otherDone.p; // another serializable transaction reads the same set, writes into it and commits
          }
          await tx.insert(racks).values(rack(`ser-from-store-${n}`));
          return n;
        },
        { isolation: "serializable" },
      );
      await otherRun;
      expect(attempts).toBe(2);
      expect(result).toBe(2); // the retry saw the other transaction's row
      expect((await store.db.select({ name: racks.name }).from(racks).where(sql`${racks.name} LIKE 'ser-%'`)).map((r) => r.name).sort()).toEqual([
        "ser-from-other",
        "ser-from-store-2",
        "ser-seed",
      ]);
    } finally {
      await other.end();
    }

    async function runOther() {
      await readDone.p;
      await other.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      await other.query("SELECT count(*) FROM racks WHERE name LIKE 'ser-%'");
      await other.query("INSERT INTO racks (name, created_at, updated_at) VALUES ('ser-from-other', now(), now())");
      await other.query("COMMIT");
      otherDone.open();
    }
  });

  it("retries the loser of a real deadlock (40P01); both transactions end committed", async () => {
    const { leases } = store.t;
    await store.db.insert(leases).values([
      { name: "dl-a", holder: "x", epoch: 0, expiresAt: new Date() },
      { name: "dl-b", holder: "x", epoch: 0, expiresAt: new Date() },
    ]);
    const bothHoldOne = { a: gate(), b: gate() };
    const attempts = { ab: 0, ba: 0 };
    const crossing = (first: string, second: string, key: "ab" | "ba", mine: ReturnType<typeof gate>, theirs: ReturnType<typeof gate>) =>
      store.transaction(async (tx) => {
        attempts[key]++;
        await tx.update(leases).set({ epoch: sql`${leases.epoch} + 1` }).where(eq(leases.name, first));
        if (attempts[key] === 1) {
          mine.open();
          await theirs.p;
        }
        await tx.update(leases).set({ epoch: sql`${leases.epoch} + 1` }).where(eq(leases.name, second));
      });
    await Promise.all([crossing("dl-a", "dl-b", "ab", bothHoldOne.a, bothHoldOne.b), crossing("dl-b", "dl-a", "ba", bothHoldOne.b, bothHoldOne.a)]);
    expect(attempts.ab + attempts.ba).toBe(3); // one of them ran twice
    const rows = await store.db.select().from(leases).where(sql`${leases.name} LIKE 'dl-%'`);
    expect(rows.map((r) => r.epoch)).toEqual([2, 2]);
  });

  it("does not retry other errors, and rolls back", async () => {
    const { racks } = store.t;
    await store.db.insert(racks).values(rack("dup"));
    let attempts = 0;
    const err = await store
      .transaction(async (tx) => {
        attempts++;
        await tx.insert(racks).values(rack("dup-partner"));
        await tx.insert(racks).values(rack("dup"));
      })
      .catch((e: unknown) => e);
    expect(pgErrorCode(err)).toBe("23505");
    expect(attempts).toBe(1);
    expect(await store.db.select().from(racks).where(eq(racks.name, "dup-partner"))).toEqual([]);
  });

  it("gives up after `attempts` serialization failures with the database's error", async () => {
    let attempts = 0;
    const err = await store
      .transaction(
        async (tx) => {
          attempts++;
          await tx.execute(sql`DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END $$`);
        },
        { attempts: 3 },
      )
      .catch((e: unknown) => e);
    expect(attempts).toBe(3);
    expect(pgErrorCode(err)).toBe("40001");
  });

  it("lockMachines holds the rows: a second transaction locking one of them waits for the first to commit", async () => {
    const { machines } = store.t;
    const [m1, m2] = await store.db
      .insert(machines)
      .values([1, 2].map((i) => ({ name: `plock-${i}`, createdAt: new Date(), updatedAt: new Date() })))
      .returning({ id: machines.id });
    const order: string[] = [];
    const held = gate();
    const release = gate();
    const first = store.transaction(async (tx) => {
      await lockMachines(tx, [m2!.id, m1!.id]);
      order.push("first locked");
      held.open();
      await release.p;
      order.push("first commits");
    });
    await held.p;
    const second = store.transaction(async (tx) => {
      await lockMachines(tx, [m1!.id]);
      order.push("second locked");
    });
    await new Promise((r) => setTimeout(r, 200));
    order.push("200 ms later");
    release.open();
    await Promise.all([first, second]);
    expect(order).toEqual(["first locked", "200 ms later", "first commits", "second locked"]);
  });

  it("openStore selects PostgreSQL with a URL", async () => {
    const s = await openStore("/nonexistent-unused", url, { max: 1 });
    try {
      expect(s.dialect).toBe("postgres");
      expect(await s.db.select({ n: sql<number>`1` }).from(s.t.racks).limit(1)).toBeDefined();
    } finally {
      await s.close();
    }
  });
});

describe("the login throttle across processes (two pools on one database)", () => {
  it("of 12 concurrent attempts on one name, split over two processes, exactly 5 pass; the lock holds on both", async () => {
    const other = pgStore(await openPgDatabase(url, { max: 6, applicationName: "proc2" }));
    try {
      const [a, b] = [new LoginThrottle({ perUser: 5 }), new LoginThrottle({ perUser: 5 })];
      const r = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => (i % 2 ? a.begin(store, `10.1.0.${i}`, "x-proc") : b.begin(other, `10.1.0.${i}`, "x-proc"))));
      expect(r.filter((x) => x.status === "fulfilled")).toHaveLength(5);
      await expect(a.begin(store, "10.1.1.1", "X-PROC")).rejects.toMatchObject({ code: "RATE_LIMITED" });
      await expect(b.begin(other, "10.1.1.2", "x-proc")).rejects.toMatchObject({ code: "RATE_LIMITED" });
    } finally {
      await other.close();
    }
  });
});

describe("check-then-act on PostgreSQL: the last enabled admin", () => {
  it("two processes disabling the last two admins at once: exactly one succeeds, every round", async () => {
    const other = pgStore(await openPgDatabase(url, { max: 4, applicationName: "proc2" }));
    const domainOf = (st: Store) => ({ db: undefined, store: st, bus: new EventBus() }) as unknown as Domain;
    try {
      const { users } = store.t;
      for (let round = 0; round < 8; round++) {
        await store.db.delete(users);
        const made = await store.db
          .insert(users)
          .values(["a", "b"].map((n) => ({ name: `adm-${n}-${round}`, role: "admin" as const, passwordHash: "x", createdAt: new Date() })))
          .returning({ id: users.id });
        const r = await Promise.allSettled([
          updateUser(domainOf(store), { id: made[0]!.id, disabled: true }, "t"),
          updateUser(domainOf(other), { id: made[1]!.id, disabled: true }, "t"),
        ]);
        expect(r.map((x) => x.status).sort(), `round ${round}`).toEqual(["fulfilled", "rejected"]);
        expect((r.find((x) => x.status === "rejected") as PromiseRejectedResult).reason).toMatchObject({ code: "CONFLICT" });
        expect((await store.db.select().from(users)).filter((u) => !u.disabled)).toHaveLength(1);
      }
    } finally {
      await other.close();
    }
  });
});

describe("sql.ts fragments mean the same on both databases", () => {
  let lite: Store;
  beforeAll(() => {
    lite = sqliteStore(openDatabase(":memory:"));
  });
  afterAll(() => lite.close());

  for (const which of ["sqlite", "postgres"] as const) {
    const s = () => (which === "sqlite" ? lite : store);
    it(`${which}: greatest/least, case-insensitive LIKE with literal wildcards, JSON key and array length, FOR UPDATE`, async () => {
      const { racks, osProfiles } = s().t;
      const d = s().dialect;
      const tag = `frag-${which}`;
      await s().db.insert(racks).values([rack(`${tag}-Rack_10%`), rack(`${tag}-rackX10y`), rack(`${tag}-Ünï "q" \\ ;`)]);
      const [{ g, l }] = (await s().db.select({ g: greatest(d, 3, sql`7`), l: least(d, 3, sql`7`) }).from(racks).limit(1)) as [{ g: number; l: number }];
      expect([Number(g), Number(l)]).toEqual([7, 3]);
      const like = async (needle: string) =>
        (await s().db.select({ name: racks.name }).from(racks).where(likeCi(d, racks.name, `%${escapeLike(needle)}%`))).map((r) => r.name).sort();
      expect(await like(`${tag}-RACK_10%`)).toEqual([`${tag}-Rack_10%`]); // _ and % literal, case ignored
      expect(await like(`"q" \\ ;`)).toEqual([`${tag}-Ünï "q" \\ ;`]);
      expect(await like("'; DROP TABLE racks; --")).toEqual([]);
      const [p] = await s()
        .db.insert(osProfiles)
        .values({ name: `${tag}-p`, kind: "image", options: { "a.b": "dotted", list: [1, 2, 3], "it's": "quoted" }, createdAt: new Date(), updatedAt: new Date() } as never)
        .returning({ id: osProfiles.id });
      const [j] = await s()
        .db.select({ dotted: jsonText(d, osProfiles.options, "a.b"), quoted: jsonText(d, osProfiles.options, "it's"), none: jsonText(d, osProfiles.options, "missing"), n: jsonArrayLength(d, sql`${osProfiles.options} -> 'list'`) })
        .from(osProfiles)
        .where(eq(osProfiles.id, p!.id));
      expect(j).toMatchObject({ dotted: "dotted", quoted: "quoted", none: null });
      expect(Number(j!.n)).toBe(3);
      expect(() => jsonText(d, osProfiles.options, 'bad"key')).toThrow(/may not contain/);
      const locked = await s().transaction(async (tx) => forUpdate(d, tx.select({ name: racks.name }).from(racks).where(eq(racks.name, `${tag}-rackX10y`))));
      expect(locked).toEqual([{ name: `${tag}-rackX10y` }]);
    });
  }
});
