import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { eventFacets, listEvents, recordStoreEvent, storedText } from "./audit";

describe("Events filters (listEvents)", () => {
  let h: Harness;
  let m1 = 0;
  let m2 = 0;
  const T0 = Date.UTC(2026, 0, 1);
  const HOSTILE = ["50%_done", "back\\slash", "quote ' and \" here", "$(reboot); rm -rf / & ..", "line\nbreak\r\0nul", "ünïcödé ✓", "%", "_", "SELECT * FROM events"];
  beforeAll(async () => {
    h = createHarness();
    m1 = (await h.operator.machines.enroll(machineInput(1))).id;
    m2 = (await h.operator.machines.enroll(machineInput(2))).id;
    await h.store.db.delete(h.store.t.events);
    const rows = [];
    for (let i = 0; i < 60; i++) {
      rows.push({
        ts: new Date(T0 + i * 60_000),
        actor: i % 3 === 0 ? "system" : i % 3 === 1 ? "user:alice" : "agent",
        machineId: i % 2 === 0 ? m1 : m2,
        kind: i % 4 === 0 ? "job.failed" : i % 4 === 1 ? "job.succeeded" : i % 4 === 2 ? "machine.transition" : "jobs.other",
        message: storedText(i < HOSTILE.length ? HOSTILE[i]! : `message number ${i}`),
      });
    }
    await h.store.db.insert(h.store.t.events).values(rows);
  });
  afterAll(() => h.close());
  const all = async (f: Parameters<typeof listEvents>[1]) => (await listEvents(h.store, { ...f, limit: 500 })).items;

  it("filters by machine id and by machine name, and an unknown name matches nothing", async () => {
    expect((await all({ machineId: m1, limit: 0 })).every((e) => e.machineId === m1)).toBe(true);
    const name = (await all({ machineId: m2, limit: 0 }))[0]!.machineName!;
    expect((await all({ machine: name.toUpperCase(), limit: 0 })).map((e) => e.id)).toEqual((await all({ machineId: m2, limit: 0 })).map((e) => e.id));
    expect(await all({ machine: "no-such-machine", limit: 0 })).toEqual([]);
  });

  it("kind is exact, or a prefix when it ends in '.' (job. is not jobs.)", async () => {
    expect(await all({ kind: "job.failed", limit: 0 })).toHaveLength(15);
    const pref = await all({ kind: "job.", limit: 0 });
    expect(pref).toHaveLength(30);
    expect(new Set(pref.map((e) => e.kind))).toEqual(new Set(["job.failed", "job.succeeded"]));
    expect(await all({ kind: "job", limit: 0 })).toEqual([]);
  });

  it("actor, time range and AND of everything", async () => {
    expect(await all({ actor: "user:alice", limit: 0 })).toHaveLength(20);
    const r = await all({ from: T0 + 10 * 60_000, to: T0 + 19 * 60_000, limit: 0 });
    expect(r).toHaveLength(10);
    expect(r.every((e) => e.ts >= T0 + 10 * 60_000 && e.ts <= T0 + 19 * 60_000)).toBe(true);
    const both = await all({ actor: "system", kind: "job.failed", machineId: m1, from: T0, to: T0 + 59 * 60_000, limit: 0 });
    expect(both.length).toBe(5); // i ≡ 0 mod 12
    expect(both.every((e) => e.actor === "system" && e.kind === "job.failed" && e.machineId === m1)).toBe(true);
  });

  it("text search is literal: LIKE wildcards, backslash, quotes, shell and SQL text only match themselves", async () => {
    for (const text of HOSTILE) {
      const hits = await all({ q: text.trim(), limit: 0 });
      // A NUL is stored (and searched) as "␀" on both databases.
      expect(hits.map((e) => e.message), JSON.stringify(text)).toContain(storedText(text));
      expect(hits.every((e) => e.message.includes(storedText(text.trim()))), JSON.stringify(text)).toBe(true);
    }
    expect((await all({ q: "%", limit: 0 })).map((e) => e.message).sort()).toEqual(["%", "50%_done"]);
    expect((await all({ q: "MESSAGE NUMBER 42", limit: 0 })).map((e) => e.message)).toEqual(["message number 42"]);
    expect(await all({ q: "x".repeat(200), limit: 0 })).toEqual([]);
  });

  it("keyset pages newest first without gaps or repeats under a filter", async () => {
    const seen: number[] = [];
    let before: number | undefined;
    for (;;) {
      const p = await listEvents(h.store, { kind: "job.", limit: 7, before });
      seen.push(...p.items.map((e) => e.id));
      if (p.nextBefore === null) break;
      before = p.nextBefore;
    }
    expect(seen).toEqual((await all({ kind: "job.", limit: 0 })).map((e) => e.id));
    expect([...seen].sort((a, b) => b - a)).toEqual(seen);
  });

  it("facets list the kinds and actors that occur", async () => {
    const f = await eventFacets(h.store);
    expect(f.kinds).toEqual(["job.failed", "job.succeeded", "jobs.other", "machine.transition"]);
    expect(f.actors).toEqual(["agent", "system", "user:alice"]);
  });

  it("the router refuses over-long filters with a clear message", async () => {
    await expect(h.viewer.events.list({ q: "x".repeat(201) })).rejects.toThrow(/200/);
    await expect(h.viewer.events.list({ kind: "k".repeat(65) })).rejects.toThrow(/64/);
    expect((await h.viewer.events.list({ q: "message number 1", limit: 500 })).items.length).toBe(10); // 10…19
  });
});

describe("recordStoreEvent", () => {
  let h: Harness;
  beforeAll(() => {
    h = createHarness();
  });
  afterAll(() => h.close());

  it("keeps hostile text and payloads as sent, and stores a NUL as U+2400 on both databases", async () => {
    const text = "$(reboot); rm -rf / & ..\r\n\\ 'quote' \"dq\" SELECT * FROM events; ünï ✓ " + "x".repeat(5000);
    const e = await recordStoreEvent(h.store, h.store.db, {
      actor: "user:a\0b",
      kind: "k.\0",
      message: `${text}\0end`,
      payload: { s: "a\u0000b", "k\0": [1, "\0", { t: text }], n: null },
    });
    const [row] = await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.id, e.id));
    expect(row).toMatchObject({ actor: "user:a\u2400b", kind: "k.\u2400", message: `${text}\u2400end` });
    expect(row!.payload).toEqual({ s: "a\u2400b", "k\u2400": [1, "\u2400", { t: text }], n: null });
    expect({ ...e, ts: 0 }).toEqual({ id: row!.id, ts: 0, actor: row!.actor, machineId: null, machineName: undefined, kind: row!.kind, message: row!.message, payload: row!.payload });
  });
});
