import { count } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { BUSY_STATES } from "../../lib/lifecycle";
import { createHarness } from "../testing/harness";
import { seedDemoLab } from "./seed";

const h = createHarness();
afterAll(() => h.close());

describe("the demo lab (either database)", () => {
  it("seeds 3 racks of 12 machines in assorted, settled states, once", async () => {
    await seedDemoLab(h.domain);
    await seedDemoLab(h.domain); // not twice: the database has racks now
    const { machines, racks } = h.store.t;
    const [{ n }] = (await h.store.db.select({ n: count() }).from(racks)) as [{ n: number }];
    expect(Number(n)).toBe(3);
    const states = (await h.store.db.select({ state: machines.state }).from(machines)).map((m) => m.state);
    expect(states).toHaveLength(36);
    expect(new Set(states).size).toBeGreaterThanOrEqual(5);
    // Nothing busy: no job would ever move such a machine on.
    expect(states.filter((s) => BUSY_STATES.includes(s))).toEqual([]);
  });
});
