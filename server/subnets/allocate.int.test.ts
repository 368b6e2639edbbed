/**
 * Allocation under concurrent enrolls: several real processes enroll machines with auto addresses into one real
 * database at the same time (a SQLite file in WAL mode, or PostgreSQL, as in production). No address may be handed
 * out twice.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { count, sql } from "drizzle-orm";
import { afterAll, expect, it } from "vitest";
import { openStore } from "../db/store";
import { testDatabaseEnv } from "../testing/test-store";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-alloc-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "server/subnets/testing/enroll-worker.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`worker exited ${code}: ${err.slice(-2000)}`))));
  });
}

it("concurrent enrolls from 4 processes never hand out one address twice", { timeout: 120_000 }, async () => {
  const url = (await testDatabaseEnv()).RACKHAND_DATABASE_URL;
  const store = await openStore(dir, url);
  const { db, t } = store;
  const now = new Date();
  const ids: number[] = [];
  for (const [i, cidr] of ["10.90.0.0/24", "2001:db8:90::/64"].entries()) {
    const [row] = await db
      .insert(t.subnets)
      .values({ name: `c${i}`, cidr, family: i ? 6 : 4, gateway: i ? "2001:db8:90::1" : "10.90.0.1", reserved: [], createdAt: now, updatedAt: now })
      .returning();
    ids.push(row!.id);
  }
  const per = 40;
  const outs = await Promise.all([0, 1, 2, 3].map((w) => run([dir, String(w), String(per), ids.join(","), w % 2 ? "batch" : "single", ...(url ? [url] : [])])));
  expect(outs.map((o) => JSON.parse(o) as { done: number }).reduce((a, o) => a + o.done, 0)).toBe(4 * per);
  const a = t.ipAllocations;
  const total = Number((await db.select({ n: count() }).from(a))[0]!.n);
  const distinct = Number((await db.select({ n: sql<number>`count(distinct ${a.subnetId} || '/' || ${a.address})` }).from(a))[0]!.n);
  expect(total).toBe(4 * per);
  expect(distinct).toBe(total);
  // The NICs carry the same addresses: 80 IPv4 (.2 to .81, gateway .1 skipped) and 80 IPv6, each once.
  const v4 = (await db.select({ ip: t.nics.ip }).from(t.nics)).map((r) => r.ip).filter(Boolean);
  expect(new Set(v4).size).toBe(v4.length);
  expect(v4.length).toBe(2 * per);
  expect(new Set(v4)).toEqual(new Set(Array.from({ length: 2 * per }, (_, i) => `10.90.0.${i + 2}`)));
  const v6 = (await db.select({ ip: t.nics.ip6 }).from(t.nics)).map((r) => r.ip).filter(Boolean);
  expect(new Set(v6).size).toBe(2 * per);
  await store.close();
});
