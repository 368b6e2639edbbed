import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SORT_FIELDS, type MachineFilter, type SortField } from "../../lib/schemas";
import { expectAppError, expectTrpcError } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { deleteMachine, enrollMachine } from "./enroll";
import { transition } from "./lifecycle";
import { cachedCount } from "./count-cache";
import { listMachines, listRows } from "./queries";

let h: Harness;
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
    (sort, dir) => {
      const all = listMachines(h.db, { sort, dir, page: 1, pageSize: 5000 });
      expect(all.total).toBe(30);
      const paged = [1, 2, 3, 4, 5].flatMap((page) => listMachines(h.db, { sort, dir, page, pageSize: 7 }).rows);
      expect(paged.map((r) => r.id)).toEqual(all.rows.map((r) => r.id));
      expect(paged).toEqual(all.rows);
    },
  );

  it("applies the filter to both the page and the total", () => {
    const r = listMachines(h.db, { states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 3 });
    const every = listMachines(h.db, { states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 5000 });
    expect(r.total).toBe(every.total);
    expect(r.rows).toEqual(every.rows.slice(0, 3));
    expect(every.rows.every((m) => m.state === "manageable" && m.name.includes("q-1"))).toBe(true);
  });
});

describe("keyset paging (cursor)", () => {
  const walk = (sort: SortField, dir: "asc" | "desc", pageSize: number, filter: MachineFilter = {}) => {
    const seen: number[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = listMachines(h.db, { ...filter, sort, dir, page: cursor ? 99 : 1, pageSize, cursor });
      seen.push(...page.rows.map((r) => r.id));
      if (!page.nextCursor) return seen;
      cursor = page.nextCursor;
    }
    throw new Error("cursor walk did not end");
  };

  it.each(SORT_FIELDS.flatMap((s) => [[s, "asc"] as const, [s, "desc"] as const]))("pages sorted by %s %s follow the one-query order", (sort, dir) => {
    const all = listMachines(h.db, { sort, dir, page: 1, pageSize: 5000 });
    expect(all.nextCursor).toBeNull();
    for (const size of [1, 7, 30]) expect(walk(sort, dir, size)).toEqual(all.rows.map((r) => r.id));
    // The large-page path (one query) continues a cursor too.
    const first = listMachines(h.db, { sort, dir, page: 1, pageSize: 7 });
    const rest = listMachines(h.db, { sort, dir, page: 1, pageSize: 1001, cursor: first.nextCursor! });
    expect([...first.rows, ...rest.rows].map((r) => r.id)).toEqual(all.rows.map((r) => r.id));
    expect(rest.nextCursor).toBeNull();
  });

  it("keeps the filter and its total", () => {
    const every = listMachines(h.db, { states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 5000 });
    expect(walk("ip", "asc", 4, { states: ["manageable"] })).toEqual(every.rows.map((r) => r.id));
    const p = listMachines(h.db, { states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 4 });
    expect(listMachines(h.db, { states: ["manageable"], sort: "ip", dir: "asc", page: 1, pageSize: 4, cursor: p.nextCursor! }).total).toBe(every.total);
  });

  it("neither repeats nor skips a row when machines are added and removed between pages", async () => {
    const p1 = listMachines(h.db, { sort: "name", dir: "asc", page: 1, pageSize: 10 });
    const before = listMachines(h.db, { sort: "name", dir: "asc", page: 1, pageSize: 5000 }).rows.map((r) => r.name);
    // One machine sorting before the cursor appears, one of the first page goes.
    const { id } = await enrollMachine(h.domain, { name: "a-new-first", bootMac: "52:54:00:0a:01:01", uHeight: 1 }, "test");
    const gone = p1.rows[2]!;
    await deleteMachine(h.domain, gone.id, "test");
    const p2 = listMachines(h.db, { sort: "name", dir: "asc", page: 1, pageSize: 10, cursor: p1.nextCursor! });
    expect(p2.rows.map((r) => r.name)).toEqual(before.slice(10, 20));
    await deleteMachine(h.domain, id, "test");
  });

  const refused = (cursor: string, sort: SortField = "name", dir: "asc" | "desc" = "asc") => {
    const err = expectAppError(() => listMachines(h.db, { sort, dir, page: 1, pageSize: 5, cursor }), "VALIDATION");
    expect(err.details).toEqual([{ field: "cursor", message: expect.any(String) }]);
    expect(err.message).toMatch(/^Invalid cursor: /);
    return err.message;
  };
  const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

  it("refuses hostile and foreign cursors with a clear message", () => {
    const good = listMachines(h.db, { sort: "rack", dir: "desc", page: 1, pageSize: 5 }).nextCursor!;
    for (const c of ["", "x y", "a\nb", "a\0b", "../../etc", "'; DROP TABLE machines; --", "$(reboot)", "é", "=".repeat(10), "A".repeat(1025)]) refused(c);
    for (const v of ["not json", "null", "[]", "42", '"s"', "{}", '{"v":2,"s":"name","d":"asc","k":["a"],"i":1}']) refused(b64(v));
    expect(refused(good, "name", "asc")).toContain("another order");
    expect(refused(good, "rack", "asc")).toContain("another order");
    const base = { v: 1, s: "name", d: "asc", k: ["q-1"], i: 3 };
    for (const k of [[], ["a", "b"], [null], [{}], [["a"]], [true], ["x".repeat(301)]]) expect(refused(b64({ ...base, k }))).toContain("damaged");
    for (const i of [0, -1, 1.5, "3", null, 2 ** 60]) expect(refused(b64({ ...base, i }))).toContain("damaged");
    expect(refused(b64(`{"__proto__":{"v":1},"s":"name"}`))).toContain("not a machines.list cursor");
    expect(refused(b64({ ...base, s: "constructor" }))).toContain("another order");
  });

  it("treats any well-formed position as a position: quotes and SQL in a key are only text", () => {
    const all = listMachines(h.db, { sort: "name", dir: "asc", page: 1, pageSize: 5000 }).rows.map((r) => r.name);
    const c = Buffer.from(JSON.stringify({ v: 1, s: "name", d: "asc", k: ["q-2' OR 1=1 --"], i: 1 })).toString("base64url");
    const rows = listMachines(h.db, { sort: "name", dir: "asc", page: 1, pageSize: 5000, cursor: c }).rows.map((r) => r.name);
    expect(rows).toEqual(all.filter((n) => n > "q-2' OR 1=1 --"));
  });
});

describe("field selection (listRows, machines.listFields)", () => {
  it("returns only the named fields and id, in the same order as the full rows", () => {
    for (const sort of SORT_FIELDS) {
      const full = listMachines(h.db, { q: "q-", sort, dir: "asc", page: 2, pageSize: 7 });
      const some = listRows(h.db, { q: "q-", sort, dir: "asc", page: 2, pageSize: 7, fields: ["name", "state"] });
      expect(some.rows).toEqual(full.rows.map((r) => ({ id: r.id, name: r.name, state: r.state })));
      expect(some.nextCursor).toBe(full.nextCursor);
      const large = listRows(h.db, { q: "q-", sort, dir: "asc", page: 1, pageSize: 2000, fields: ["bmcLastSeen"] });
      expect(large.rows.map((r) => Object.keys(r).sort().join())).toEqual(large.rows.map(() => "bmcLastSeen,id"));
      expect(large.rows.map((r) => r.id)).toEqual(listMachines(h.db, { q: "q-", sort, dir: "asc", page: 1, pageSize: 2000 }).rows.map((r) => r.id));
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

describe("prepared list queries (one per shape, values as placeholders)", () => {
  const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 100 };
  /** The same filter answered by a fresh, unprepared query: every machine, filtered in JS. */
  const everything = () => listMachines(h.db, { ...base, pageSize: 5000 }).rows;

  it("the same shape with other values answers for the new values", () => {
    for (const state of ["enrolled", "manageable", "available"] as const) {
      const r = listMachines(h.db, { ...base, states: [state] });
      expect(r.rows.map((x) => x.id)).toEqual(everything().filter((x) => x.state === state).map((x) => x.id));
      expect(r.total).toBe(r.rows.length);
    }
    for (const maintenance of [true, false, true]) {
      const r = listMachines(h.db, { ...base, maintenance });
      expect(r.total).toBe(everything().filter((x) => x.maintenance === maintenance).length);
    }
  });

  it("text searches of each kind (name, exact MAC, partial MAC) in turn", () => {
    const q = (text: string) => listMachines(h.db, { ...base, q: text }).rows.map((x) => x.name);
    expect(q("q-7-")).toEqual(everything().filter((x) => x.name.includes("q-7-")).map((x) => x.name));
    expect(q("52:54:00:0a:00:03")).toEqual(everything().filter((x) => x.bootMac === "52:54:00:0a:00:03").map((x) => x.name));
    expect(q("54-00-0a-00-1")).toEqual(everything().filter((x) => x.bootMac!.startsWith("52:54:00:0a:00:1")).map((x) => x.name));
    expect(q("q-1")).toEqual(everything().filter((x) => x.name.includes("q-1")).map((x) => x.name));
    expect(q("%")).toEqual([]);
  });

  it("page size and offset are values too: a different page of the same shape is the right slice", () => {
    const all = everything().map((x) => x.id);
    for (const [page, pageSize] of [[1, 4], [3, 4], [2, 9], [1, 30]] as const) {
      expect(listMachines(h.db, { ...base, page, pageSize }).rows.map((x) => x.id)).toEqual(all.slice((page - 1) * pageSize, page * pageSize));
    }
  });

  it("cursors of one sort continue from their own position", () => {
    const all = everything().map((x) => x.id);
    const first = listMachines(h.db, { ...base, pageSize: 6 });
    const second = listMachines(h.db, { ...base, pageSize: 6, cursor: first.nextCursor! });
    const third = listMachines(h.db, { ...base, pageSize: 6, cursor: second.nextCursor! });
    expect([...first.rows, ...second.rows, ...third.rows].map((x) => x.id)).toEqual(all.slice(0, 18));
  });
});

describe("cached match counts (cachedCount)", () => {
  const base = { sort: "name" as const, dir: "asc" as const, page: 1, pageSize: 5 };
  const truth = (state: "enrolled" | "manageable") => (h.db.$client.prepare("SELECT count(*) AS n FROM machines WHERE state = ?").get(state) as { n: number }).n;

  it("counts once while nothing changes, and again after any write", () => {
    let runs = 0;
    const count = () => (runs++, 7);
    expect(cachedCount(h.db, "test|a", count)).toBe(7);
    expect(cachedCount(h.db, "test|a", count)).toBe(7);
    expect(runs).toBe(1);
    expect(cachedCount(h.db, "test|b", count)).toBe(7);
    expect(runs).toBe(2);
    h.db.$client.prepare("UPDATE machines SET updated_at = updated_at WHERE id = (SELECT min(id) FROM machines)").run();
    cachedCount(h.db, "test|a", count);
    expect(runs).toBe(3);
  });

  it("the total follows enrollments, transitions and deletions on this connection", async () => {
    const total = () => listMachines(h.db, { ...base, states: ["enrolled"] }).total;
    expect(total()).toBe(truth("enrolled"));
    const { id } = await enrollMachine(h.domain, { name: "count-1", bootMac: "52:54:00:0b:00:01", uHeight: 1 }, "test");
    expect(total()).toBe(truth("enrolled"));
    await transition(h.domain, id, "manage", { actor: "test" });
    expect(total()).toBe(truth("enrolled"));
    expect(listMachines(h.db, { ...base, states: ["manageable"] }).total).toBe(truth("manageable"));
    await deleteMachine(h.domain, id, "test");
    expect(total()).toBe(truth("enrolled"));
  });

  it("the total follows a commit by another connection (another process)", () => {
    const other = new Database(path.join(h.dataDir, "rackhand.db"));
    try {
      const total = () => listMachines(h.db, { ...base, states: ["enrolled"] }).total;
      const before = total();
      const id = (other.prepare("SELECT id FROM machines WHERE state = 'enrolled' ORDER BY id LIMIT 1").get() as { id: number }).id;
      other.prepare("UPDATE machines SET state = 'manageable' WHERE id = ?").run(id);
      expect(total()).toBe(before - 1);
      other.prepare("UPDATE machines SET state = 'enrolled' WHERE id = ?").run(id);
      expect(total()).toBe(before);
    } finally {
      other.close();
    }
  });

  it("inside a transaction it always counts, so a rolled-back change never sticks", () => {
    const total = () => listMachines(h.db, { ...base, states: ["enrolled"] }).total;
    const before = total();
    expect(() =>
      h.db.transaction(() => {
        h.db.$client.prepare("UPDATE machines SET state = 'manageable' WHERE state = 'enrolled'").run();
        expect(total()).toBe(0);
        throw new Error("roll back");
      }),
    ).toThrow("roll back");
    expect(total()).toBe(before);
    expect(before).toBe(truth("enrolled"));
  });
});
