/**
 * Power sync with several processes on one PostgreSQL (vitest project postgres only): each BMC is swept by one
 * process per interval (sweep leases), a dead process's BMCs go to a survivor once its leases lapse, and two
 * processes never talk to one BMC at once (the schedulers' cross-process lock).
 */
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PgDb } from "../db/pg/client";
import { bmcLockOn } from "../db/pg/leases";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { createFakeDriver } from "./fake";
import { sweepPower } from "./power-sync";
import { BmcScheduler } from "./scheduler";

let h: Harness;
let ids: number[];
let reads: Map<string, number>;

beforeEach(async () => {
  h = createHarness();
  ids = [];
  for (let n = 1; n <= 30; n++) ids.push((await h.operator.machines.enroll(machineInput(n, { bmc: { driver: "fake", address: `10.62.0.${n}`, username: "u", password: "p" } }))).id);
  // Count the BMC reads of the (in-memory) fake driver, per BMC.
  reads = new Map();
  const fake = h.domain.oob.driver("fake") as ReturnType<typeof createFakeDriver>;
  const getPower = fake.power.getPower;
  fake.power.getPower = async (t) => {
    reads.set(t.address, (reads.get(t.address) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 2)); // a BMC takes time: the two processes' sweeps overlap
    return getPower(t);
  };
});
afterEach(() => h.close());

const pool = () => (h.store.db as unknown as PgDb).$client;

describe("power sync across processes", () => {
  it("two processes sweeping at once read each BMC exactly once; within the interval neither sweeps it again", async () => {
    const [a, b] = await Promise.all([sweepPower(h.domain, { owner: "proc-a", concurrency: 4 }), sweepPower(h.domain, { owner: "proc-b", concurrency: 4 })]);
    expect(a.machines + b.machines).toBe(30);
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    expect(reads.size).toBe(30);
    const again = await Promise.all([sweepPower(h.domain, { owner: "proc-a" }), sweepPower(h.domain, { owner: "proc-b" })]);
    expect(again.map((s) => s.machines)).toEqual([0, 0]);
    // "Sync now" asked by an operator reads every BMC, leased or not.
    expect((await sweepPower(h.domain, { owner: "proc-b", all: true })).machines).toBe(30);
  });

  it("a process that stops sweeping (dead) leaves its BMCs to a survivor once its leases lapse", async () => {
    expect((await sweepPower(h.domain, { owner: "proc-dead" })).machines).toBe(30);
    expect((await sweepPower(h.domain, { owner: "proc-live" })).machines).toBe(0);
    // The interval passes (the leases' deadline, on the database's clock).
    await h.store.db.execute(sql`UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name LIKE 'sweep:%'`);
    expect((await sweepPower(h.domain, { owner: "proc-live" })).machines).toBe(30);
    const holders = await h.store.db.execute<{ holder: string; n: string }>(sql`SELECT holder, count(*) AS n FROM leases WHERE name LIKE 'sweep:%' GROUP BY holder`);
    expect(holders.rows).toEqual([{ holder: "proc-live", n: "30" }]);
  });

  it("two processes' schedulers never talk to the same BMC at once; different BMCs go in parallel", async () => {
    const mk = () => {
      const s = new BmcScheduler({ spacingMs: 0, attempts: 1, backoffMs: 0 });
      s.crossProcess = bmcLockOn(pool(), 5000);
      return s;
    };
    const procs = [mk(), mk()];
    let inside = 0;
    let most = 0;
    const call = (s: BmcScheduler, key: string) =>
      s.exclusive(key, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 20));
        inside--;
      });
    await Promise.all(Array.from({ length: 6 }, (_, i) => call(procs[i % 2]!, "10.62.1.1:623")));
    expect(most).toBe(1);
    most = 0;
    await Promise.all([call(procs[0]!, "10.62.1.1:623"), call(procs[1]!, "10.62.1.2:623")]);
    expect(most).toBe(2);
    // A key that is not address:port is refused, not locked on something else.
    const bad = new BmcScheduler({ spacingMs: 0, attempts: 1, backoffMs: 0 });
    bad.crossProcess = bmcLockOn(pool(), 5000);
    await expect(bad.exclusive("no-port", async () => 1)).rejects.toThrow(/not a BMC key/);
  });
});
