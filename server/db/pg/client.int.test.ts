import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgCluster, type PgCluster } from "../../testing/pg-cluster";
import { until } from "../../testing/until";
import { openStore } from "../store";
import { openPgDatabase, type PgDb } from "./client";
import { machines, nics, racks, settings } from "./schema";

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("openPgDatabase on a real PostgreSQL", () => {
  it("three processes' worth of pools starting at once migrate once, and all see the schema", async () => {
    const url = await cluster.createDatabase();
    const dbs = await Promise.all([1, 2, 3].map((i) => openPgDatabase(url, { max: 2, applicationName: `rackhand-${i}` })));
    try {
      const applied = await dbs[0]!.execute<{ n: string }>(sql`SELECT count(*) AS n FROM drizzle.__drizzle_migrations`);
      // Every migration of drizzle-pg/ applied exactly once (pg_init, pg_ip_num, pg_socket_io_attachments, pg_subnets …).
      const journal = JSON.parse(fs.readFileSync(path.resolve("drizzle-pg/meta/_journal.json"), "utf8")) as { entries: unknown[] };
      expect(journal.entries.length).toBeGreaterThanOrEqual(4);
      expect(Number(applied.rows[0]!.n)).toBe(journal.entries.length);
      const tables = await dbs[1]!.execute<{ t: string }>(sql`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
      expect(tables.rows.map((r) => r.t)).toContain("steps");
      expect(tables.rows.map((r) => r.t)).toContain("leases");
      // Opening again applies nothing new.
      const again = await openPgDatabase(url, { max: 1 });
      await again.$client.end();
      const after = await dbs[2]!.execute<{ n: string }>(sql`SELECT count(*) AS n FROM drizzle.__drizzle_migrations`);
      expect(Number(after.rows[0]!.n)).toBe(journal.entries.length);
    } finally {
      await Promise.all(dbs.map((d) => d.$client.end()));
    }
  });

  describe("values round-trip as the SQLite schema's TypeScript types", () => {
    let db: PgDb;
    beforeAll(async () => {
      db = await openPgDatabase(await cluster.createDatabase(), { max: 2 });
    });
    afterAll(async () => {
      await db?.$client.end();
    });

    it("timestamps (ms), booleans, JSON, identity ids, the one-boot-NIC partial index and ip_num", async () => {
      const at = new Date(1_765_000_000_123);
      const [rack] = await db.insert(racks).values({ name: "r1", createdAt: at, updatedAt: at }).returning();
      expect(rack!.id).toBe(1);
      expect(rack!.createdAt.getTime()).toBe(at.getTime());
      const [m] = await db
        .insert(machines)
        .values({ name: "m1", rackId: rack!.id, inventory: { cpus: 4, disks: [{ name: "sda" }] }, createdAt: at, updatedAt: at })
        .returning();
      expect(m!.maintenance).toBe(false);
      expect(m!.inventory).toEqual({ cpus: 4, disks: [{ name: "sda" }] });
      await db.insert(nics).values({ machineId: m!.id, mac: "52:54:00:00:00:01", ip: "10.0.0.10", isBoot: true });
      await db.insert(nics).values({ machineId: m!.id, mac: "52:54:00:00:00:02", ip: "10.0.0.9", isBoot: false });
      await expect(db.insert(nics).values({ machineId: m!.id, mac: "52:54:00:00:00:03", isBoot: true })).rejects.toThrow();
      const byIp = await db.select({ ip: nics.ip }).from(nics).orderBy(sql`ip_num(${nics.ip})`);
      expect(byIp.map((r) => r.ip)).toEqual(["10.0.0.9", "10.0.0.10"]);
      const nums = await db.execute<{ a: string | null; b: string | null; c: string | null }>(
        sql`SELECT ip_num('255.255.255.255') AS a, ip_num('10.0.0.1; DROP TABLE nics') AS b, ip_num('::1') AS c`,
      );
      expect(nums.rows[0]).toEqual({ a: "4294967295", b: null, c: null });
    });

    it("hostile text and JSON stay in their fields", async () => {
      const hostile = ["a\nb\r\0c", "\\", "'; DROP TABLE settings; --", '"$(reboot)"', "&;..", "é✓中", "x".repeat(100_000)];
      const at = new Date();
      for (const [i, v] of hostile.entries()) {
        // NUL cannot be stored in PostgreSQL text or jsonb: refused with an error, nothing written.
        if (v.includes("\0")) {
          await expect(db.insert(settings).values({ key: `k${i}`, value: { v }, updatedAt: at })).rejects.toThrow();
          continue;
        }
        await db.insert(settings).values({ key: v.slice(0, 200), value: { v }, updatedAt: at });
        const [row] = await db.select().from(settings).where(eq(settings.key, v.slice(0, 200)));
        expect(row!.value).toEqual({ v });
      }
      const all = await db.select({ n: sql<number>`count(*)::int` }).from(settings);
      expect(all[0]!.n).toBe(hostile.length - 1);
    });
  });

  it("refuses a URL that is not postgres:// before connecting, without repeating its password", async () => {
    const err = await openPgDatabase("mysql://strict:secret-pass@localhost/x").then(
      () => "opened",
      (e: Error) => e.message,
    );
    expect(err).toMatch(/postgres:\/\//);
    expect(err).not.toMatch(/secret-pass/);
  });

  it("openStore: SQLite under the data directory without RACKHAND_DATABASE_URL, PostgreSQL with it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-store-"));
    try {
      const lite = await openStore(dir, undefined);
      expect(lite.dialect).toBe("sqlite");
      await lite.db.insert(lite.t.racks).values({ name: "in-sqlite", createdAt: new Date(), updatedAt: new Date() });
      await lite.close();
      expect(fs.existsSync(path.join(dir, "rackhand.db"))).toBe(true);
      const url = await cluster.createDatabase();
      const store = await openStore(dir, url);
      expect(store.dialect).toBe("postgres");
      const [r] = await store.db.insert(racks).values({ name: "via-store", createdAt: new Date(), updatedAt: new Date() }).returning();
      expect(r!.name).toBe("via-store");
      await store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Last in this file: it restarts the shared cluster.
  it("a PostgreSQL restart cuts every connection; the pool reconnects and nothing written is lost", async () => {
    const db = await openPgDatabase(await cluster.createDatabase(), { max: 3 });
    try {
      const at = new Date();
      await db.insert(racks).values({ name: "before-restart", createdAt: at, updatedAt: at });
      // Hold connections in the pool (idle) so the restart has something to cut.
      await Promise.all([1, 2, 3].map(() => db.execute(sql`SELECT pg_sleep(0.05)`)));
      await cluster.restart();
      // Idle clients that lost their connection were dropped by the pool ('error' listened to): the next
      // queries open new connections.
      const names = await until("queries to work again after the restart", async () => {
        try {
          return (await db.select({ name: racks.name }).from(racks)).map((r) => r.name);
        } catch {
          return undefined;
        }
      });
      expect(names).toContain("before-restart");
      await db.insert(racks).values({ name: "after-restart", createdAt: at, updatedAt: at });
      expect((await db.select().from(racks)).map((r) => r.name).sort()).toEqual(["after-restart", "before-restart"]);
    } finally {
      await db.$client.end();
    }
  });
});
