import { count, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MACHINE_STATES, type MachineState } from "../../../lib/lifecycle";
import { SORT_FIELDS } from "../../../lib/schemas";
import { driveTo } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

// machines.list, count and summary: server-side filter, search, sort and paging (split from machines.test.ts).
let h: Harness;
const drive = (id: number, state: MachineState) => driveTo(h.domain, id, state);

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("machines.list, count and summary", () => {
  let rackA: number;
  let rackB: number;
  // A separate naming space so list assertions only see these machines (via q="fleet-").
  const fleet: { id: number; name: string; ip: string; mac: string; state: MachineState; rackId: number | null }[] = [];

  beforeAll(async () => {
    rackA = (await h.operator.racks.create({ name: "list-a", heightU: 42 })).id;
    rackB = (await h.operator.racks.create({ name: "list-b", heightU: 42 })).id;
    const specs: { ip: string; mac: string; state: MachineState; rack: number | null; u?: number }[] = [
      { ip: "10.9.0.10", mac: "52:54:00:f0:00:05", state: "deployed", rack: rackA, u: 5 },
      { ip: "10.9.0.9", mac: "52:54:00:f0:00:01", state: "available", rack: rackB, u: 1 },
      { ip: "10.9.0.100", mac: "52:54:00:f0:00:03", state: "deploy_failed", rack: rackA, u: 1 },
      { ip: "10.9.0.2", mac: "52:54:00:f0:00:04", state: "enrolled", rack: null },
      { ip: "10.9.1.1", mac: "52:54:00:f0:00:02", state: "available", rack: rackA, u: 3 },
      { ip: "9.255.255.255", mac: "52:54:00:f0:00:06", state: "manageable", rack: rackB, u: 2 },
    ];
    // Names deliberately not in IP or MAC order.
    const names = ["fleet-c", "fleet-f", "fleet-a", "fleet-e", "fleet-b", "fleet-d"];
    for (const [i, s] of specs.entries()) {
      const { id } = await h.operator.machines.enroll({
        name: names[i]!,
        bootMac: s.mac,
        ip: s.ip,
        rackId: s.rack,
        uPosition: s.u ?? null,
      });
      await drive(id, s.state);
      fleet.push({ id, name: names[i]!, ip: s.ip, mac: s.mac, state: s.state, rackId: s.rack });
    }
    await h.operator.machines.setMaintenance({ id: fleet[0]!.id, on: true, reason: "fan" });
    // No power sync exists yet to set power states, so set two directly for the power filter and sort.
    await h.store.db.update(h.store.t.machines).set({ powerState: "on" }).where(inArray(h.store.t.machines.id, [fleet[1]!.id, fleet[4]!.id]));
    await h.store.db.update(h.store.t.machines).set({ powerState: "off" }).where(eq(h.store.t.machines.id, fleet[3]!.id));
  });

  const list = (input: Parameters<Harness["viewer"]["machines"]["list"]>[0] = {}) =>
    h.viewer.machines.list({ q: "fleet-", pageSize: 100, ...input });
  const names = (rows: { name: string }[]) => rows.map((r) => r.name);

  it("filters by one or several states", async () => {
    expect(names((await list({ states: ["available"] })).rows)).toEqual(["fleet-b", "fleet-f"]);
    const r = await list({ states: ["deployed", "deploy_failed", "enrolled"] });
    expect(names(r.rows)).toEqual(["fleet-a", "fleet-c", "fleet-e"]);
    expect(r.total).toBe(3);
  });

  it("filters by rack, maintenance and power", async () => {
    const a = await list({ rackId: rackA });
    expect(names(a.rows)).toEqual(["fleet-a", "fleet-b", "fleet-c"]);
    expect(a.rows.every((r) => r.rackName === "list-a")).toBe(true);
    expect(names((await list({ rackId: rackB, states: ["manageable"] })).rows)).toEqual(["fleet-d"]);
    expect(names((await list({ maintenance: true })).rows)).toEqual(["fleet-c"]);
    expect(names((await list({ power: "on" })).rows)).toEqual(["fleet-b", "fleet-f"]);
    expect(names((await list({ power: "off" })).rows)).toEqual(["fleet-e"]);
    expect((await list({ power: "unknown" })).total).toBe(3);
  });

  it("searches by name, by MAC in any spelling and by IP", async () => {
    const q = (text: string) => h.viewer.machines.list({ q: text, pageSize: 100 }).then((r) => names(r.rows));
    expect(await q("FLEET-D")).toEqual(["fleet-d"]);
    for (const spelling of ["52:54:00:f0:00:03", "52-54-00-F0-00-03", "5254.00f0.0003", "525400F00003"]) {
      expect(await q(spelling)).toEqual(["fleet-a"]);
    }
    expect(await q("f0:00:0")).toEqual(["fleet-a", "fleet-b", "fleet-c", "fleet-d", "fleet-e", "fleet-f"]);
    // Partial MACs typed with dashes find the stored colon form.
    expect(await q("F0-00-0")).toEqual(["fleet-a", "fleet-b", "fleet-c", "fleet-d", "fleet-e", "fleet-f"]);
    expect(await q("00-f0-00-03")).toEqual(["fleet-a"]);
    expect(await q("10.9.0.9")).toEqual(["fleet-f"]);
    expect(await q("10.9.1.")).toEqual(["fleet-b"]);
    // LIKE wildcards are literal text.
    expect(await q("fleet_")).toEqual([]);
    expect(await q("%")).toEqual([]);
  });

  it.each(SORT_FIELDS)("sorts by %s, both directions", async (sort) => {
    const asc = (await list({ sort, dir: "asc" })).rows;
    const desc = (await list({ sort, dir: "desc" })).rows;
    expect(asc).toHaveLength(6);
    const byName = new Map(fleet.map((f) => [f.name, f]));
    const key = (r: (typeof asc)[number]): (string | number)[] => {
      const f = byName.get(r.name)!;
      switch (sort) {
        case "name":
          return [r.name];
        case "state":
          // Lifecycle order, as the table lists states.
          return [MACHINE_STATES.indexOf(r.state), r.name];
        case "power":
          return [r.powerState, r.name];
        case "rack":
          return [r.rackName ?? "", r.uPosition ?? 0];
        case "ip":
          return [r.ip!.split(".").reduce((acc, o) => acc * 256 + Number(o), 0)];
        case "mac":
          return [r.bootMac!];
        case "created":
          return [f.id];
      }
    };
    const cmp = (a: (string | number)[], b: (string | number)[]) => {
      for (let i = 0; i < a.length; i++) if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
      return 0;
    };
    const expected = [...asc].sort((a, b) => cmp(key(a), key(b)));
    expect(names(asc)).toEqual(names(expected));
    // The primary key really is descending in desc order.
    const primary = (r: (typeof asc)[number]) => key(r)[0]!;
    expect(desc.map(primary)).toEqual([...asc.map(primary)].reverse());
  });

  it("sorts IPs numerically, not as text", async () => {
    const asc = (await list({ sort: "ip" })).rows.map((r) => r.ip);
    expect(asc).toEqual(["9.255.255.255", "10.9.0.2", "10.9.0.9", "10.9.0.10", "10.9.0.100", "10.9.1.1"]);
    const desc = (await list({ sort: "ip", dir: "desc" })).rows.map((r) => r.ip);
    expect(desc).toEqual([...asc].reverse());
  });

  it("sorts MACs and creation order", async () => {
    expect((await list({ sort: "mac" })).rows.map((r) => r.bootMac)).toEqual([...fleet.map((f) => f.mac)].sort());
    expect(names((await list({ sort: "created" })).rows)).toEqual(fleet.map((f) => f.name));
  });

  it("pages with a total that ignores the page", async () => {
    const p1 = await list({ pageSize: 4, page: 1 });
    const p2 = await list({ pageSize: 4, page: 2 });
    const p3 = await list({ pageSize: 4, page: 3 });
    expect(p1.total).toBe(6);
    expect(p2.total).toBe(6);
    expect(names(p1.rows)).toEqual(["fleet-a", "fleet-b", "fleet-c", "fleet-d"]);
    expect(names(p2.rows)).toEqual(["fleet-e", "fleet-f"]);
    expect(p3.rows).toEqual([]);
    expect(p2).toMatchObject({ page: 2, pageSize: 4 });
    const filtered = await list({ states: ["available"], pageSize: 1, page: 2 });
    expect(filtered.total).toBe(2);
    expect(names(filtered.rows)).toEqual(["fleet-f"]);
  });

  it("counts a filter's matches", async () => {
    expect(await h.viewer.machines.count({ q: "fleet-" })).toEqual({ total: 6 });
    expect(await h.viewer.machines.count({ q: "fleet-", states: ["available", "deployed"] })).toEqual({ total: 3 });
    expect(await h.viewer.machines.count({ q: "fleet-", rackId: rackB })).toEqual({ total: 2 });
    expect(await h.viewer.machines.count({ q: "no-such-machine" })).toEqual({ total: 0 });
  });

  it("summarises the fleet by state, power and maintenance", async () => {
    const s = await h.viewer.machines.summary();
    const total = (await h.store.db.select({ n: count() }).from(h.store.t.machines))[0]!.n;
    expect(s.total).toBe(total);
    const byState = Object.fromEntries(s.byState.map((r) => [r.state, r.n]));
    for (const state of MACHINE_STATES) {
      const n = (await h.store.db.select({ n: count() }).from(h.store.t.machines).where(eq(h.store.t.machines.state, state)))[0]!.n;
      expect(byState[state] ?? 0).toBe(n);
    }
    expect(byState.deploy_failed).toBeGreaterThanOrEqual(1);
    expect(s.maintenance).toBe(1);
  });
});
