/**
 * Allocation at deploy from two processes on one PostgreSQL (two pools on the same database, as two Rackhand
 * processes have): deploys racing for one subnet never get the same address, a full subnet refuses the rest with its
 * message and keeps nothing of them. The subnet's row lock (StoreAllocator) makes them take turns; without it both
 * would choose the same first free address and the loser would be refused although addresses are left.
 */
import { drizzle } from "drizzle-orm/node-postgres";
import { eq, inArray } from "drizzle-orm";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import * as pgSchema from "../db/pg/schema";
import { pgStore, type Store } from "../db/store";
import { createHarness, type Harness } from "../testing/harness";
import { addMachine, addSubnet } from "../testing/planning-fixture";
import { allocatePending } from "./allocate";

let h: Harness;
let other: Store;

beforeEach(async () => {
  h = createHarness();
  // Wait for the harness's database, then open a second pool on it: the other process.
  await h.store.db.select().from(h.store.t.subnets).limit(1);
  const url = (h.store.db as unknown as { $client: pg.Pool }).$client.options.connectionString!;
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  other = pgStore(drizzle<typeof pgSchema, pg.Pool>(pool, { schema: pgSchema }));
});
afterEach(async () => {
  await other.close();
  h.close();
});

describe("allocation at deploy from two processes", () => {
  it("40 deploys from two pools race for a subnet of 29 addresses: 29 distinct addresses, 11 refused, nothing kept of them", async () => {
    const subnet = await addSubnet(h, { name: "race", cidr: "10.84.0.0/27", gateway: "10.84.0.1" });
    const ids: number[] = [];
    for (let k = 0; k < 40; k++) {
      const id = await addMachine(h, { name: `race-${k}`, bootMac: `52:54:00:a3:00:${k.toString(16).padStart(2, "0")}`, ifname: "eno1" });
      await h.store.db.update(h.store.t.nics).set({ addressMode: "auto", subnetId: subnet }).where(eq(h.store.t.nics.machineId, id));
      ids.push(id);
    }
    const results = await Promise.allSettled(ids.map((id, i) => (i % 2 ? other : h.store).transaction((tx) => allocatePending(i % 2 ? other : h.store, tx, id))));
    const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(refused.every((e) => e instanceof AppError && e.code === "CONFLICT" && /^race-\d+ cannot be deployed: eno1 needs an IPv4 address: Subnet race \(10\.84\.0\.0\/27\) has no free address left$/.test(e.message))).toBe(true);
    expect(ok).toHaveLength(29);
    expect(refused).toHaveLength(11);
    const handed = ok.flatMap((o) => o.map((a) => a.address));
    expect(new Set(handed).size).toBe(29);
    const { ipAllocations: a, nics } = h.store.t;
    const rows = await h.store.db.select({ address: a.address, machineId: a.machineId }).from(a).where(eq(a.subnetId, subnet));
    expect(rows.map((r) => r.address).sort()).toEqual([...handed].sort());
    const nicRows = await h.store.db.select({ machineId: nics.machineId, ip: nics.ip }).from(nics).where(inArray(nics.machineId, ids));
    // Every NIC with an address holds the allocation of its own machine; the refused ones hold none.
    const byMachine = new Map(rows.map((r) => [r.machineId, r.address]));
    for (const r of nicRows) expect(r.ip ?? null).toBe(byMachine.get(r.machineId) ?? null);
    expect(nicRows.filter((r) => r.ip === null)).toHaveLength(11);
  });
});
