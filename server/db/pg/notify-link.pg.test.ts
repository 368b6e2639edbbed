/**
 * NotifyLink on a real PostgreSQL (vitest project postgres only): two links on one channel, as two processes.
 * Order, batching, a LISTEN backend killed by the server, a sending backend killed (dropped, never sent twice),
 * payloads NOTIFY would refuse, and queued work on the sending connection.
 */
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { until } from "../../testing/until";
import { NotifyLink } from "./notify-link";

/** The cluster's maintenance database: channels are per database, and this one is never a template. */
const url = () => {
  const u = new URL(process.env.RACKHAND_TEST_PG_TEMPLATE ?? "");
  u.pathname = "/postgres";
  return u.toString();
};

let channel: string;
let links: NotifyLink[];
let seenA: string[];
let seenB: string[];
let a: NotifyLink;
let b: NotifyLink;

async function terminate(role: "listen" | "notify", appName: string): Promise<number> {
  const admin = new pg.Client({ connectionString: url() });
  await admin.connect();
  try {
    const r = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [`${appName}-${role}`]);
    return r.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

beforeEach(async () => {
  if (!process.env.RACKHAND_TEST_PG_TEMPLATE) throw new Error("needs the vitest project postgres");
  channel = `rh_link_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  seenA = [];
  seenB = [];
  a = new NotifyLink({ url: url(), channel, appName: `${channel}-a`, label: "link a" });
  b = new NotifyLink({ url: url(), channel, appName: `${channel}-b`, label: "link b" });
  links = [a, b];
  await a.start((p) => seenA.push(p));
  await b.start((p) => seenB.push(p));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(links.map((l) => l.stop()));
});

const nums = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

describe("NotifyLink", () => {
  it("delivers every payload once, in order, to every listener (its own included); what waits goes in few statements", async () => {
    const query = vi.spyOn(pg.Client.prototype, "query");
    for (let i = 1; i <= 1000; i++) a.send([String(i)], "n");
    b.send(["b1", "b2"], "two"); // one item of two payloads
    await until("everything at b", () => seenB.length === 1002);
    await until("everything at a", () => seenA.length === 1002);
    await new Promise((r) => setTimeout(r, 200)); // nothing more arrives (no duplicate)
    expect(seenB.filter((p) => !p.startsWith("b"))).toEqual(nums(1, 1000));
    expect(seenA.filter((p) => !p.startsWith("b"))).toEqual(nums(1, 1000));
    expect(seenB.filter((p) => p.startsWith("b"))).toEqual(["b1", "b2"]);
    expect(a.stats).toEqual({ sent: 1000, dropped: 0 });
    expect(b.stats).toEqual({ sent: 1, dropped: 0 });
    const notifies = query.mock.calls.filter((c) => typeof c[0] === "string" && c[0].includes("pg_notify"));
    expect(notifies.length).toBe(3); // 500 items a statement at most, and b's one
  });

  it("reopens a LISTEN connection the server killed; nothing is received twice", async () => {
    const back = vi.fn();
    b.onReconnect = back;
    for (let i = 1; i <= 50; i++) a.send([String(i)], "n");
    await until("the first 50", () => seenB.length === 50);
    expect(await terminate("listen", `${channel}-b`)).toBe(1);
    await until("b to LISTEN again", () => back.mock.calls.length === 1 && b.connected);
    for (let i = 51; i <= 100; i++) a.send([String(i)], "n");
    await until("the next 50", () => seenB.length === 100);
    await new Promise((r) => setTimeout(r, 200));
    expect(seenB).toEqual(nums(1, 100));
    expect(seenA).toEqual(nums(1, 100)); // a's own LISTEN was not touched
  });

  it("drops what it cannot send while its sending connection is down, sends nothing twice, and sends again once it is back", async () => {
    for (let i = 1; i <= 20; i++) a.send([String(i)], "n");
    await until("the first 20", () => seenB.length === 20);
    expect(await terminate("notify", `${channel}-a`)).toBe(1);
    // Sent in the same step as the loss is seen: the reconnect (a timer) cannot come between.
    await until("a's sending connection gone", () => !a.connected && a.send(["lost"], "n"));
    await until("the lost one counted", () => a.stats.dropped === 1);
    await until("a connected again", () => a.connected);
    for (let i = 21; i <= 40; i++) a.send([String(i)], "n");
    await until("the next 20", () => seenB.length === 40);
    await new Promise((r) => setTimeout(r, 200));
    expect(seenB).toEqual(nums(1, 40));
    expect(a.stats).toEqual({ sent: 40, dropped: 1 });
  });

  it("drops alone a payload NOTIFY would refuse (8,000 bytes or more, a NUL); the others of the same moment go", async () => {
    const hostile = "a\nb\rc\\d\"e'f$(rm -rf /);g&h..\u2028i\ud83d\ude00 NOTIFY x; LISTEN y; --";
    expect(a.send(["ok-1"], "n")).toBe(true);
    expect(a.send(["x".repeat(8000)], "big")).toBe(false);
    expect(a.send(["€".repeat(2667)], "big")).toBe(false); // 2,667 characters, 8,001 bytes
    expect(a.send(["ok-2", "nul\u0000inside"], "nul")).toBe(false); // the item goes whole or not at all
    expect(a.send(["x".repeat(7999)], "n")).toBe(true);
    expect(a.send([hostile], "n")).toBe(true);
    await until("three at b", () => seenB.length === 3);
    expect(seenB).toEqual(["ok-1", "x".repeat(7999), hostile]);
    expect(a.stats).toEqual({ sent: 3, dropped: 3 });
  });

  it("runs queued work on the sending connection after what was queued before it, and before what comes after", async () => {
    a.send(["1"], "n");
    const done = a.withPublisher(async (c) => {
      await c!.query("SELECT pg_notify($1, '2')", [channel]);
      return "ran";
    });
    a.send(["3"], "n");
    await expect(done).resolves.toBe("ran");
    await expect(a.withPublisher(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(
      a.withPublisher(() => {
        throw new Error("thrown");
      }),
    ).rejects.toThrow("thrown");
    a.send(["4"], "n");
    await until("four at b", () => seenB.length === 4);
    expect(seenB).toEqual(["1", "2", "3", "4"]);
  });

  it("sends what waits before stop() closes it, and nothing after", async () => {
    for (let i = 1; i <= 10; i++) a.send([String(i)], "n");
    await a.stop();
    expect(a.send(["late"], "n")).toBe(false);
    await until("the ten at b", () => seenB.length === 10);
    expect(seenB).toEqual(nums(1, 10));
  });

  it("refuses a channel that is not a lower-case SQL identifier", () => {
    for (const bad of ["bus; DROP TABLE machines", "a\nb", "a\u0000b", 'a"b', "a'b", "$(x)", "a.b", "../x", "Bus", "bü", "x".repeat(64), "", "1abc"]) {
      expect(() => new NotifyLink({ url: url(), channel: bad, appName: "x", label: "test" }), bad).toThrow(/SQL identifier/);
    }
  });
});
