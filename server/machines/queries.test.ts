/**
 * The machine list (listMachines, listRows) on both stores (vitest projects sqlite and postgres): offset and keyset
 * paging in every sort, field selection, the filters, hostile search text and cursors, and the cached count. The
 * same expectations hold on both, so both answer alike. SQLite's count-cache details: count-cache.test.ts.
 */
import { and, count, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SORT_FIELDS, type MachineFilter, type SortField } from "../../lib/schemas";
import { expectTrpcError, rejectsAppError } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { deleteMachine, enrollMachine } from "./enroll";
import { transition } from "./lifecycle";
import { listMachines, listRows, type ListOptions } from "./queries";

let h: Harness;
const list = (o: ListOptions) => listMachines(h.store, o);
/** Code point order, as SQLite's BINARY collation and PostgreSQL's "C" compare. */
const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

beforeAll(async () => {
  h = createHarness();
  const racks = [await h.admin.racks.create({ name: "qa", heightU: 42 }), await h.admin.racks.create({ name: "qb", heightU: 42 })];
  for (let i = 0; i < 30; i++) {
    const { id } = await enrollMachine(
      h.domain,
      {
        name: `q-${(i * 7) % 30}-${i}`,
        bootMac: `52:54:00:0a:00:${i.toString(16).padStart(2, "0")}`,
        ip: i % 4 === 0 ? null : `10.${i % 3}.0.${(i * 13) % 250}`,
        rackId: i % 3 === 0 ? null : racks[i % 2]!.id,
        uPosition: i % 3 === 0 ? null : i + 1,
        uHeight: 1,
      },
      "test",
    );
    if (i % 2) await transition(h.domain, id, "manage", { actor: "test" });
  }
});
afterAll(() => h.close());

describe("listMachines paging", () => {
  it.each(SORT_FIELDS.flatMap((s) => [[s, "asc"] as const, [s, "desc"] as const]))(
    "pages sorted by %s %s concatenate to the one-query listing",
    async (sort, dir) => {
      const all = await list({ sort, dir, page: 1, pageSize: 5000 });
      expect(all.total).toBe(30);
      const paged = (await Promise.all([1, 2, 3, 4, 5].map((page) => list({ sort, dir, page, pageSize: 7 })))).flatMap((p) => p.rows);
      expect(paged.map((r) => r.id)).toEqual(all.rows.map((r) => r.id));
      expect(paged).toEqual(all.rows);
    },
  );

  it("orders as the sort says: names byte-wise, IPs numerically, no rack / IP first in ascending order, ties by id", async () => {
    const rows = (await list({ sort: "name", dir: "asc", page: 1, pageSize: 5000 })).rows;
    expect(rows.map((r) => r.name)).toEqual(rows.map((r) => r.name).sort(bytewise));
    const byIp = (await list({ sort: "ip", dir: "asc", page: 1, pageSize: 5000 })).rows;
    const ipNum = (ip: string | null) => (ip === null ? -1 : ip.split(".").reduce((n, p) => n * 256 + Number(p), 0));
    expect(byIp.map((r) => [ipNum(r.ip), r.id])).toEqual(byIp.map((r) => [ipNum(r.ip), r.id]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!));
    expect(byIp[0]!.ip).toBeNull();
    const byIpDesc = (await list({ sort: "ip", dir: "desc", page: 1, pageSize: 5000 })).rows;
    expect(byIpDesc.at(-1)!.ip).toBeNull();
    // Ties (no IP) stay in id order in both directions.
    const noIp = (rs: typeof byIp) => rs.filter((r) => r.ip === null).map((r) => r.id);
    expect(noIp(byIpDesc)).toEqual(noIp(byIp));
    expect(noIp(byIp)).toEqual([...noIp(byIp)].sort((a, b) => a - b));
    const byRack = (await list({ sort: "rack", dir: "asc", page: 1, pageSize: 5000 })).rows;
    expect(byRack.slice(0, 10).every((r) => r.rackName === null)).toBe(true);
    const racked = byRack.filter((r) => r.rackName !== null);
    expect(racked.map((r) => [r.rackName, r.uPosition])).toEqual(racked.map((r) => [r.rackName, r.uPosition]).sort((a, b) => bytewise(String(a[0]), String(b[0])) || Number(a[1]) - Number(b[1])));
    const byState = (await list({ sort: "state", dir: "asc", page: 1, pageSize: 5000 })).rows;
    expect(byState.slice(0, 15).every((r) => r.state === "enrolled")).toBe(true);
    expect(byState.slice(15).every((r) => r.state === "manageable")).toBe(true);
  });

  it("applies the filter to both the page and the total", async () => {
    const r = await list({ states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 3 });
    const every = await list({ states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 5000 });
    expect(r.total).toBe(every.total);
    expect(r.rows).toEqual(every.rows.slice(0, 3));
    expect(every.rows.every((m) => m.state === "manageable" && m.name.includes("q-1"))).toBe(true);
    expect(every.total).toBeGreaterThan(3);
  });

  it("rows carry every table field, decoded alike on both databases (booleans, the BMC's last contact in epoch ms)", async () => {
    const { machines: m, bmcs: b } = h.store.t;
    const { id } = await h.operator.machines.enroll({ name: "with-bmc", bootMac: "52:54:00:0c:00:01", ip: "10.9.9.9", bmc: { driver: "fake", address: "127.0.0.9", username: "u", password: "p" } });
    const seen = new Date(1_767_000_000_123);
    await h.store.db.update(b).set({ lastSeen: seen, reachable: true }).where(eq(b.machineId, id));
    await h.store.db.update(m).set({ maintenance: true, lastError: "boom" }).where(eq(m.id, id));
    const row = (await list({ q: "with-bmc", sort: "name", dir: "asc", page: 1, pageSize: 5 })).rows;
    expect(row).toEqual([
      {
        id,
        name: "with-bmc",
        state: "enrolled",
        powerState: "unknown",
        powerPending: null,
        maintenance: true,
        rackId: null,
        rackName: null,
        uPosition: null,
        uHeight: 1,
        firmware: "auto",
        bootFirmware: null,
        bootMac: "52:54:00:0c:00:01",
        ip: "10.9.9.9",
        osProfileName: null,
        lastError: "boom",
        bmcReachable: true,
        bmcLastSeen: seen.getTime(),
      },
    ]);
    const fields = (await listRows(h.store, { q: "with-bmc", sort: "name", dir: "asc", page: 1, pageSize: 5, fields: ["bmcLastSeen", "maintenance"] })).rows;
    expect(fields).toEqual([{ id, bmcLastSeen: seen.getTime(), maintenance: true }]);
    await deleteMachine(h.domain, id, "test");
  });
});

describe("keyset paging (cursor)", () => {
  const walk = async (sort: SortField, dir: "asc" | "desc", pageSize: number, filter: MachineFilter = {}) => {
    const seen: number[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = await list({ ...filter, sort, dir, page: cursor ? 99 : 1, pageSize, cursor });
      seen.push(...page.rows.map((r) => r.id));
      if (!page.nextCursor) return seen;
      cursor = page.nextCursor;
    }
    throw new Error("cursor walk did not end");
  };

  it.each(SORT_FIELDS.flatMap((s) => [[s, "asc"] as const, [s, "desc"] as const]))("pages sorted by %s %s follow the one-query order", async (sort, dir) => {
    const all = await list({ sort, dir, page: 1, pageSize: 5000 });
    expect(all.nextCursor).toBeNull();
    for (const size of [1, 7, 30]) expect(await walk(sort, dir, size)).toEqual(all.rows.map((r) => r.id));
    // The large-page path (one query on SQLite) continues a cursor too.
    const first = await list({ sort, dir, page: 1, pageSize: 7 });
    const rest = await list({ sort, dir, page: 1, pageSize: 1001, cursor: first.nextCursor! });
    expect([...first.rows, ...rest.rows].map((r) => r.id)).toEqual(all.rows.map((r) => r.id));
    expect(rest.nextCursor).toBeNull();
  });

  it("a cursor is the same text on both databases: the sort, the direction, the row's keys and id", async () => {
    const first = await list({ sort: "ip", dir: "desc", page: 1, pageSize: 2 });
    const last = first.rows[1]!;
    const ipNum = last.ip!.split(".").reduce((n, p) => n * 256 + Number(p), 0);
    expect(JSON.parse(Buffer.from(first.nextCursor!, "base64url").toString())).toEqual({ v: 1, s: "ip", d: "desc", k: [ipNum], i: last.id });
    const byRack = await list({ sort: "rack", dir: "asc", page: 1, pageSize: 1 });
    expect(JSON.parse(Buffer.from(byRack.nextCursor!, "base64url").toString())).toEqual({ v: 1, s: "rack", d: "asc", k: ["", -1], i: byRack.rows[0]!.id });
    const byState = await list({ sort: "state", dir: "asc", page: 1, pageSize: 1 });
    expect(JSON.parse(Buffer.from(byState.nextCursor!, "base64url").toString())).toEqual({ v: 1, s: "state", d: "asc", k: [0, byState.rows[0]!.name], i: byState.rows[0]!.id });
  });

  it("keeps the filter and its total", async () => {
    const every = await list({ states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 5000 });
    expect(await walk("ip", "asc", 4, { states: ["manageable"] })).toEqual(every.rows.map((r) => r.id));
    const p = await list({ states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 4 });
    expect((await list({ states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 4, cursor: p.nextCursor! })).total).toBe(every.total);
  });

  it("neither repeats nor skips a row when machines are added and removed between pages", async () => {
    const p1 = await list({ sort: "name", dir: "asc", page: 1, pageSize: 10 });
    const before = (await list({ sort: "name", dir: "asc", page: 1, pageSize: 5000 })).rows.map((r) => r.name);
    // One machine sorting before the cursor appears, one of the first page goes.
    const { id } = await enrollMachine(h.domain, { name: "a-new-first", bootMac: "52:54:00:0a:01:01", uHeight: 1 }, "test");
    const gone = p1.rows[2]!;
    await deleteMachine(h.domain, gone.id, "test");
    const p2 = await list({ sort: "name", dir: "asc", page: 1, pageSize: 10, cursor: p1.nextCursor! });
    expect(p2.rows.map((r) => r.name)).toEqual(before.slice(10, 20));
    await deleteMachine(h.domain, id, "test");
  });

  const refused = async (cursor: string, sort: SortField = "name", dir: "asc" | "desc" = "asc") => {
    const err = await rejectsAppError(list({ sort, dir, page: 1, pageSize: 5, cursor }), "VALIDATION");
    expect(err.details).toEqual([{ field: "cursor", message: expect.any(String) }]);
    expect(err.message).toMatch(/^Invalid cursor: /);
    return err.message;
  };
  const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

  it("refuses hostile and foreign cursors with a clear message", async () => {
    const good = (await list({ sort: "rack", dir: "desc", page: 1, pageSize: 5 })).nextCursor!;
    for (const c of ["", "x y", "a\nb", "a\0b", "../../etc", "'; DROP TABLE machines; --", "$(reboot)", "é", "=".repeat(10), "A".repeat(1025)]) await refused(c);
    for (const v of ["not json", "null", "[]", "42", '"s"', "{}", '{"v":2,"s":"name","d":"asc","k":["a"],"i":1}']) await refused(b64(v));
    expect(await refused(good, "name", "asc")).toContain("another order");
    expect(await refused(good, "rack", "asc")).toContain("another order");
    const base = { v: 1, s: "name", d: "asc", k: ["q-1"], i: 3 };
    for (const k of [[], ["a", "b"], [null], [{}], [["a"]], [true], ["x".repeat(301)], [1], ["nul\u0000"]]) expect(await refused(b64({ ...base, k }))).toContain("damaged");
    for (const i of [0, -1, 1.5, "3", null, 2 ** 60]) expect(await refused(b64({ ...base, i }))).toContain("damaged");
    // Each key must be of its sort's kind: a number where the order compares numbers, text where it compares text.
    for (const [s, k] of [["ip", ["167772161"]], ["ip", [1.5]], ["ip", [1e300]], ["state", ["0", "q"]], ["state", [0, 1]], ["rack", [1, 1]], ["rack", ["qa", "1"]], ["created", ["7"]], ["mac", [5]]] as const) {
      expect(await refused(b64({ v: 1, s, d: "asc", k, i: 3 }), s)).toContain("damaged");
    }
    expect(await refused(b64(`{"__proto__":{"v":1},"s":"name"}`))).toContain("not a machines.list cursor");
    expect(await refused(b64({ ...base, s: "constructor" }))).toContain("another order");
  });

  it("treats any well-formed position as a position: quotes, SQL and non-ASCII in a key are only text", async () => {
    const all = (await list({ sort: "name", dir: "asc", page: 1, pageSize: 5000 })).rows.map((r) => r.name);
    for (const key of ["q-2' OR 1=1 --", "q-2\\", "q-2é😀", "q-1\n", "Q-2", "q-2$(x);&"]) {
      const c = b64({ v: 1, s: "name", d: "asc", k: [key], i: 1 });
      const rows = (await list({ sort: "name", dir: "asc", page: 1, pageSize: 5000, cursor: c })).rows.map((r) => r.name);
      expect(rows, key).toEqual(all.filter((n) => n > key));
    }
    const ipKey = b64({ v: 1, s: "ip", d: "asc", k: [2 ** 40], i: 1 });
    expect((await list({ sort: "ip", dir: "asc", page: 1, pageSize: 5000, cursor: ipKey })).rows).toEqual([]);
  });
});

describe("field selection (listRows, machines.listFields)", () => {
  it("returns only the named fields and id, in the same order as the full rows", async () => {
    for (const sort of SORT_FIELDS) {
      const full = await list({ q: "q-", sort, dir: "asc", page: 2, pageSize: 7 });
      const some = await listRows(h.store, { q: "q-", sort, dir: "asc", page: 2, pageSize: 7, fields: ["name", "state"] });
      expect(some.rows).toEqual(full.rows.map((r) => ({ id: r.id, name: r.name, state: r.state })));
      expect(some.nextCursor).toBe(full.nextCursor);
      const large = await listRows(h.store, { q: "q-", sort, dir: "asc", page: 1, pageSize: 2000, fields: ["bmcLastSeen"] });
      expect(large.rows.map((r) => Object.keys(r).sort().join())).toEqual(large.rows.map(() => "bmcLastSeen,id"));
      expect(large.rows.map((r) => r.id)).toEqual((await list({ q: "q-", sort, dir: "asc", page: 1, pageSize: 2000 })).rows.map((r) => r.id));
    }
  });

  it("refuses unknown and hostile field names over the API", async () => {
    for (const f of ["password", "passwordEncrypted", "inventory", "__proto__", "name; DROP TABLE machines", "name\n", "", "x".repeat(500), "nämе"]) {
      const { shape } = await expectTrpcError(h.viewer.machines.listFields({ fields: ["name", f as "name"] }), "BAD_REQUEST");
      expect(shape.message).toContain("Unknown field");
      expect(shape.message.length).toBeLessThan(1000);
    }
    await expectTrpcError(h.viewer.machines.listFields({ fields: [] }), "BAD_REQUEST");
    const r = await h.viewer.machines.listFields({ fields: ["ip", "rackName"], sort: "rack", pageSize: 3 });
    expect(Object.keys(r.rows[0]!).sort()).toEqual(["id", "ip", "rackName"]);
    const next = await h.viewer.machines.listFields({ fields: ["ip", "rackName"], sort: "rack", pageSize: 3, cursor: r.nextCursor! });
    expect(next.rows[0]!.id).not.toBe(r.rows[0]!.id);
  });
});

describe("filters and their values (prepared per shape on SQLite)", () => {
  const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 100 };
  /** Every machine, to filter in JS. */
  const everything = async () => (await list({ ...base, pageSize: 5000 })).rows;

  it("the same shape with other values answers for the new values", async () => {
    for (const state of ["enrolled", "manageable", "available"] as const) {
      const r = await list({ ...base, states: [state] });
      expect(r.rows.map((x) => x.id)).toEqual((await everything()).filter((x) => x.state === state).map((x) => x.id));
      expect(r.total).toBe(r.rows.length);
    }
    for (const maintenance of [true, false, true]) {
      const r = await list({ ...base, maintenance });
      expect(r.total).toBe((await everything()).filter((x) => x.maintenance === maintenance).length);
    }
    const rack = (await everything()).find((x) => x.rackId !== null)!.rackId!;
    expect((await list({ ...base, rackId: rack })).rows.map((x) => x.id)).toEqual((await everything()).filter((x) => x.rackId === rack).map((x) => x.id));
    expect((await list({ ...base, power: "on" })).total).toBe(0);
  });

  it("text searches of each kind (name, IP, exact MAC, partial MAC, any case) in turn", async () => {
    const all = await everything();
    const q = async (text: string) => (await list({ ...base, q: text })).rows.map((x) => x.name);
    expect(await q("q-7-")).toEqual(all.filter((x) => x.name.includes("q-7-")).map((x) => x.name));
    expect(await q("Q-7-")).toEqual(await q("q-7-"));
    expect(await q("52:54:00:0a:00:03")).toEqual(all.filter((x) => x.bootMac === "52:54:00:0a:00:03").map((x) => x.name));
    expect(await q("52-54-00-0A-00-03")).toEqual(await q("52:54:00:0a:00:03"));
    expect(await q("54-00-0a-00-1")).toEqual(all.filter((x) => x.bootMac!.startsWith("52:54:00:0a:00:1")).map((x) => x.name));
    expect(await q("q-1")).toEqual(all.filter((x) => x.name.includes("q-1")).map((x) => x.name));
    expect(await q("10.2.0.")).toEqual(all.filter((x) => x.ip?.includes("10.2.0.")).map((x) => x.name));
    expect(await q("%")).toEqual([]);
    expect(await q("q_1")).toEqual([]);
  });

  it("hostile search text is matched literally or matches nothing, with its total; never an error", async () => {
    for (const text of ["'; DROP TABLE machines; --", "a\nb", "x\ry", "q-1\u0000", "\u0000", "\\", "\\%", '"', "$(reboot)", "a;b&c", "../..", "é€😀", "LIKE", "ESCAPE", "x".repeat(100)]) {
      for (const f of [{ q: text }, { cpuModel: text }, { q: text, cpuModel: text }]) {
        const r = await list({ ...base, ...f });
        expect(r, JSON.stringify(f)).toEqual({ rows: [], total: 0, page: 1, pageSize: 100, nextCursor: null });
        expect((await h.viewer.machines.count(f)).total).toBe(0);
      }
    }
    // A NUL matches nothing even where the text before it would (SQLite's LIKE would stop at it).
    expect((await list({ ...base, q: "q-1" })).total).toBeGreaterThan(0);
    expect((await list({ ...base, q: "q-1\u0000x" })).total).toBe(0);
  });

  it("page size and offset are values too: a different page of the same shape is the right slice", async () => {
    const all = (await everything()).map((x) => x.id);
    for (const [page, pageSize] of [[1, 4], [3, 4], [2, 9], [1, 30], [99, 5]] as const) {
      expect((await list({ ...base, page, pageSize })).rows.map((x) => x.id)).toEqual(all.slice((page - 1) * pageSize, page * pageSize));
    }
    // A page past any table (its offset beyond a 64-bit integer) is empty, with the total.
    for (const [page, pageSize] of [[2 ** 31, 10_000], [Number.MAX_SAFE_INTEGER, 10_000], [Number.MAX_SAFE_INTEGER, 1]] as const) {
      const far = await list({ ...base, page, pageSize });
      expect(far).toEqual({ rows: [], total: all.length, page, pageSize, nextCursor: null });
    }
  });

  it("cursors of one sort continue from their own position", async () => {
    const all = (await everything()).map((x) => x.id);
    const first = await list({ ...base, pageSize: 6 });
    const second = await list({ ...base, pageSize: 6, cursor: first.nextCursor! });
    const third = await list({ ...base, pageSize: 6, cursor: second.nextCursor! });
    expect([...first.rows, ...second.rows, ...third.rows].map((x) => x.id)).toEqual(all.slice(0, 18));
  });
});

describe("match counts (cached per filter until the next write)", () => {
  const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 5 };
  const truth = async (state: "enrolled" | "manageable") => {
    const m = h.store.t.machines;
    return (await h.store.db.select({ n: count() }).from(m).where(eq(m.state, state)))[0]!.n;
  };
  const total = async () => (await list({ ...base, states: ["enrolled"] })).total;

  it("the total follows enrollments, transitions and deletions", async () => {
    expect(await total()).toBe(await truth("enrolled"));
    const { id } = await enrollMachine(h.domain, { name: "count-1", bootMac: "52:54:00:0b:00:01", uHeight: 1 }, "test");
    expect(await total()).toBe(await truth("enrolled"));
    await transition(h.domain, id, "manage", { actor: "test" });
    expect(await total()).toBe(await truth("enrolled"));
    expect((await list({ ...base, states: ["manageable"] })).total).toBe(await truth("manageable"));
    expect((await h.viewer.machines.count({ states: ["manageable"] })).total).toBe(await truth("manageable"));
    await deleteMachine(h.domain, id, "test");
    expect(await total()).toBe(await truth("enrolled"));
  });

  it("the total follows a write that announced nothing (another process's, or plain SQL): the cache does not hang on events", async () => {
    const { machines: m } = h.store.t;
    const before = await total();
    expect(await total()).toBe(before);
    const ids = (await h.store.db.select({ id: m.id }).from(m).where(eq(m.state, "enrolled")).limit(2)).map((r) => r.id);
    await h.store.db.update(m).set({ state: "manageable" }).where(inArray(m.id, ids));
    expect(await total()).toBe(before - 2);
    expect((await h.viewer.machines.count({ states: ["enrolled"] })).total).toBe(before - 2);
    await h.store.db.update(m).set({ state: "enrolled" }).where(and(inArray(m.id, ids), eq(m.state, "manageable")));
    expect(await total()).toBe(before);
  });

  it("a transaction's write rolled back leaves the total as it was", async () => {
    const { machines: m } = h.store.t;
    const before = await total();
    await expect(
      h.store.transaction(async (tx) => {
        await tx.update(m).set({ state: "manageable" }).where(eq(m.state, "enrolled"));
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await total()).toBe(before);
    expect(before).toBe(await truth("enrolled"));
  });
});
