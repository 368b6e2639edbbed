/**
 * The event bus across processes on a real PostgreSQL (vitest project postgres only): three buses, as three
 * processes, bridged through LISTEN/NOTIFY on one database.
 */
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../lib/live-events";
import { EventBus } from "./bus";
import { PgBusBridge } from "./pg-bus-bridge";

/** The cluster's maintenance database: channels are per database, and this one is never a template. */
const url = () => {
  const u = new URL(process.env.RACKHAND_TEST_PG_TEMPLATE ?? "");
  u.pathname = "/postgres";
  return u.toString();
};

interface Proc {
  bus: EventBus;
  bridge: PgBusBridge;
  seen: LiveEvent[];
}
let procs: Proc[];
let channel: string;

const until = async (what: string, ok: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

beforeEach(async () => {
  if (!process.env.RACKHAND_TEST_PG_TEMPLATE) throw new Error("needs the vitest project postgres");
  channel = `rh_bus_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  procs = [];
  for (const origin of ["proc-a:1", "proc-b:2", "proc-c:3"]) {
    const bus = new EventBus();
    const seen: LiveEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const bridge = new PgBusBridge(bus, url(), { origin, channel });
    await bridge.start();
    procs.push({ bus, bridge, seen });
  }
});
afterEach(async () => {
  await Promise.all(procs.map((p) => p.bridge.stop()));
});

const job = (jobId: number): LiveEvent => ({ type: "job.changed", jobId, machineId: 1, batchId: null, state: "running" });

describe("event bus across processes", () => {
  it("every process sees every event once, in the order of its origin, and nothing echoes back", async () => {
    const [a, b, c] = procs as [Proc, Proc, Proc];
    for (let i = 1; i <= 200; i++) a.bus.publish(job(i));
    for (let i = 1001; i <= 1050; i++) b.bus.publish(job(i));
    await until("all events everywhere", () => c.seen.length === 250 && a.seen.length === 250 && b.seen.length === 250);
    await new Promise((r) => setTimeout(r, 200)); // nothing more arrives (no echo, no duplicate)
    for (const p of procs) expect(p.seen).toHaveLength(250);
    const fromA = (p: Proc) => p.seen.map((e) => (e as { jobId: number }).jobId).filter((j) => j <= 200);
    expect(fromA(c)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(fromA(b)).toEqual(fromA(c));
    expect(c.bridge.stats).toMatchObject({ received: 250, gaps: 0 });
    expect(a.bridge.stats).toMatchObject({ sent: 200, dropped: 0, received: 50 });
  });

  it("an event larger than a NOTIFY payload arrives whole; hostile text is carried as it is", async () => {
    const [a, b] = procs as [Proc, Proc];
    const hostile = "a\nb\rc\u0000d\\e\"f'g$(rm -rf /);h&i..\u2028j\ud83d\ude00k NOTIFY x; LISTEN y; --";
    const lines = Array.from({ length: 400 }, (_, i) => ({ seq: i + 1, ts: 1_700_000_000_000 + i, text: `line ${i} ${hostile} ${"x".repeat(100)}` }));
    const big = { type: "log.lines", jobId: 7, machineId: 1, lines } as unknown as LiveEvent;
    expect(JSON.stringify(big).length).toBeGreaterThan(50_000);
    a.bus.publish(big);
    a.bus.publish(job(8));
    await until("the big event and the next", () => b.seen.length === 2);
    expect(b.seen[0]).toEqual(big);
    expect(b.seen[1]).toEqual(job(8));
  });

  it("an event under the chunk size in characters but over NOTIFY's 8,000 bytes arrives whole (non-ASCII, quotes, backslashes)", async () => {
    const [a, b] = procs as [Proc, Proc];
    const texts = ["€".repeat(6800), "\u{1F600}".repeat(3300), '"'.repeat(6800), "\\".repeat(6800), "é\"\\\n".repeat(1700)];
    const events = texts.map((text, i) => ({ type: "log.lines", jobId: 100 + i, machineId: 1, lines: [{ seq: 1, ts: 1, text }] }) as unknown as LiveEvent);
    for (const e of events) expect(JSON.stringify(e).length).toBeLessThan(14_000);
    for (const e of events) a.bus.publish(e);
    a.bus.publish(job(9));
    await until("the five events and the next", () => b.seen.length === events.length + 1);
    expect(b.seen).toEqual([...events, job(9)]);
    expect(a.bridge.stats.dropped).toBe(0);
  });

  it("a lost LISTEN connection is reopened and events flow again", async () => {
    const [a, b] = procs as [Proc, Proc];
    const admin = new pg.Client({ connectionString: url() });
    await admin.connect();
    try {
      const killed = await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rackhand-bus-listen' AND query = $1",
        [`LISTEN ${channel}`],
      );
      expect(killed.rowCount).toBe(3);
    } finally {
      await admin.end();
    }
    // Until it is back, events may be missed; once it is, they arrive.
    await until("b to see a's events again", () => {
      a.bus.publish(job(99));
      return b.seen.some((e) => (e as { jobId: number }).jobId === 99);
    });
  });

  it("a queue over its cap drops (counted at both ends) instead of growing without end", async () => {
    const [, b] = procs as [Proc, Proc];
    const bus = new EventBus();
    const bridge = new PgBusBridge(bus, url(), { origin: "proc-d:4", channel, maxPending: 50 });
    await bridge.start();
    try {
      for (let i = 1; i <= 200; i++) bus.publish(job(5000 + i)); // all queued at once: 50 go, 150 are dropped
      await until("the first 50", () => b.seen.length === 50);
      bus.publish(job(6000));
      await until("the next one", () => b.seen.length === 51);
      expect(bridge.stats).toMatchObject({ sent: 51, dropped: 150 });
      expect(b.bridge.stats.gaps).toBe(150);
    } finally {
      await bridge.stop();
    }
  });

  it("refuses a channel that is not an identifier", () => {
    expect(() => new PgBusBridge(new EventBus(), url(), { origin: "x:1", channel: "bus; DROP TABLE machines" })).toThrow(/SQL identifier/);
  });
});
