/**
 * Serial consoles across processes on a real PostgreSQL (vitest project postgres only): three ConsoleManagers, as
 * three processes, on one database, each with its own link (LISTEN/NOTIFY) and its own console driver. The driver
 * is a test stream whose output the test writes and whose input it reads, so bytes can be followed end to end.
 */
import { sql } from "drizzle-orm";
import type pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../../lib/errors";
import type { Domain } from "../../context";
import { EventBus } from "../../events/bus";
import { silentLogger } from "../../log";
import { createHarness, type Harness } from "../../testing/harness";
import { until } from "../../testing/until";
import { createOobRuntime, defaultOobConfig } from "../registry";
import { testConsoleDriver as testDriver, type TestStream } from "../testing/console-driver";
import { ConsoleCluster } from "./cluster";
import { parseKeyboardHolder, validMessage } from "./messages";
import { ConsoleManager, createConsoleManager, type ConsoleStatus } from "./manager";

interface Proc {
  name: string;
  consoles: ConsoleManager;
  data: Buffer[];
  statuses: ConsoleStatus[];
  text: () => Buffer;
  last: () => ConsoleStatus | undefined;
}

let h: Harness;
let url: string;
let channel: string;
let streams: TestStream[];
let procs: Proc[];
let machineId: number;

/** A process: its own bus, OOB runtime (driver) and console manager, on the harness's database. */
async function proc(name: string, opts: { graceMs?: number } = {}): Promise<Proc> {
  const oob = createOobRuntime(defaultOobConfig(h.dataDir, { consoleDir: `${h.dataDir}/consoles-${name}`, consoleGraceMs: opts.graceMs ?? 60_000 }), {
    extraDrivers: [testDriver(name, streams)],
  });
  const d: Domain = { db: h.db, store: h.store, bus: new EventBus(), secrets: h.domain.secrets, log: silentLogger, oob };
  // Renewals by hand (tick()), so the test decides when leases are renewed and lapse.
  const consoles = createConsoleManager(d, { databaseUrl: url, owner: `${name}:1`, channel, leaseMs: 600_000, renewMs: 300_000, batchMs: 5, snapshotTimeoutMs: 2_000 });
  expect(consoles.cluster).toBeInstanceOf(ConsoleCluster);
  const data: Buffer[] = [];
  const statuses: ConsoleStatus[] = [];
  consoles.subscribe((m) => (m.type === "data" ? data.push(m.data) : statuses.push(m.status)));
  await consoles.start();
  const p = { name, consoles, data, statuses, text: () => Buffer.concat(data), last: () => statuses.at(-1) };
  procs.push(p);
  return p;
}

const leaseRow = async (name: string) =>
  (await h.store.db.execute<{ holder: string; live: boolean; epoch: number }>(sql`SELECT holder, epoch, expires_at >= clock_timestamp() AS live FROM leases WHERE name = ${name}`)).rows[0];

const notHeld = (p: Promise<unknown>, message = "Take the keyboard first") => expect(p).rejects.toMatchObject({ code: "CONSOLE_NOT_HELD", message });

beforeEach(async () => {
  h = createHarness();
  streams = [];
  procs = [];
  channel = `rh_console_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  machineId = (await h.operator.machines.enroll({ name: "con-pg-1", bootMac: "52:54:00:c1:00:01", bmc: { driver: "fake", address: "10.64.0.1", username: "admin", password: "pw" } })).id;
  url = (h.store.db as unknown as { $client: pg.Pool }).$client.options.connectionString!;
});
afterEach(async () => {
  for (const p of procs) await p.consoles.closeAll();
  h.close();
});

describe("serial console across processes", () => {
  it("one stream on the first viewer's process; its output reaches viewers everywhere in order, binary-safe; late joiners get the recent output", async () => {
    const [a, b, c] = [await proc("proc-a"), await proc("proc-b"), await proc("proc-c")];
    const joinA = await a.consoles.join(machineId, "va", "alice");
    expect(joinA.status).toMatchObject({ state: "open", viewers: 1, holder: null });
    expect(streams).toHaveLength(1);
    const stream = streams[0]!;
    expect(stream.proc).toBe("proc-a");
    expect(await leaseRow(`console:${machineId}`)).toMatchObject({ holder: "proc-a:1", live: true });

    // What the machine printed before B and C came reaches them as the recent output, from A.
    stream.push("BIOS boot\r\n\x1b[1;32mGRUB\x1b[0m\r\n");
    const joinB = await b.consoles.join(machineId, "vb", "bob");
    expect(joinB.recent.toString("latin1")).toBe("BIOS boot\r\n\x1b[1;32mGRUB\x1b[0m\r\n");
    expect(joinB.status).toMatchObject({ state: "open", viewers: 2 });
    const joinC = await c.consoles.join(machineId, "vc", "carol");
    expect(joinC.recent.toString("latin1")).toBe("BIOS boot\r\n\x1b[1;32mGRUB\x1b[0m\r\n");
    expect(joinC.status).toMatchObject({ state: "open", viewers: 3 });
    expect(streams).toHaveLength(1); // B and C opened nothing
    await until("A counts every viewer", () => a.consoles.status(machineId).viewers === 3);

    // Every byte value, NUL, escape sequences, and a burst larger than one message, in many chunks.
    const chunks: Buffer[] = [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0, 0, 0x1b, 0x5b, 0x32, 0x4a, 0xff, 0xfe, 0x0d, 0x0a])];
    for (let i = 0; i < 300; i++) chunks.push(Buffer.from(`line ${i} \u00e9\u2603 ${"=".repeat(i % 50)}\r\n`));
    chunks.push(Buffer.alloc(20_000, 0xa5), Buffer.from("\x1b]0;title\x07\x1b[2J\x1b[Hend\r\n"));
    const before = { a: a.text().length, b: b.text().length, c: c.text().length };
    for (const ch of chunks) stream.push(ch);
    const expected = Buffer.concat(chunks);
    await until("all output at B and C", () => b.text().length - before.b >= expected.length && c.text().length - before.c >= expected.length);
    expect(b.text().subarray(before.b).equals(expected)).toBe(true);
    expect(c.text().subarray(before.c).equals(expected)).toBe(true);
    expect(a.text().subarray(before.a).equals(expected)).toBe(true);
    expect(b.consoles.cluster!.stats.gaps).toBe(0);

    // A late joiner on B (B already mirrors) gets the same screen as one on A: the last 64 KiB.
    const late = await b.consoles.join(machineId, "vb2", "dave");
    const atA = await a.consoles.join(machineId, "va2", "erin");
    expect(late.recent.equals(atA.recent)).toBe(true);
    expect(late.recent.subarray(-expected.length).equals(expected)).toBe(true);
    await until("five viewers everywhere", () => [a, b, c].every((p) => p.consoles.status(machineId).viewers === 5));
  });

  it("keys typed on any process reach the stream only from the keyboard holder; the keyboard has one holder across processes; audited once", async () => {
    const [a, b, c] = [await proc("proc-a"), await proc("proc-b"), await proc("proc-c")];
    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await c.consoles.join(machineId, "vc", "carol");
    const stream = streams[0]!;
    const typed = () => Buffer.concat(stream.written).toString("utf8");

    await notHeld(b.consoles.input(machineId, "vb", "nobody holds it\r"));
    await notHeld(b.consoles.input(machineId, "vx", "not a viewer here\r"));
    await b.consoles.take(machineId, "vb", "bob");
    expect(parseKeyboardHolder((await leaseRow(`keyboard:${machineId}`))!.holder)).toEqual({ process: "proc-b:1", viewerId: "vb", name: "bob" });
    await until("every process shows bob holding the keyboard", () => [a, b, c].every((p) => p.consoles.status(machineId).holder === "bob" && p.last()?.holder === "bob"));

    const keys = "ls -la /\r\u0000\x1b[A\u00e9\u2603;$(reboot)&'\"\\\n";
    await b.consoles.input(machineId, "vb", keys);
    // A paste as large as the gateway allows (4,096 characters, 3 bytes each in UTF-8): several messages, in order.
    const paste = Array.from({ length: 4096 }, (_, i) => String.fromCharCode(0x3041 + (i % 80))).join("");
    await b.consoles.input(machineId, "vb", paste);
    await until("the keys at A's stream", () => typed().length >= (keys + paste).length);
    expect(typed()).toBe(keys + paste);

    // Others cannot type while bob holds it, wherever they are (the owner's own viewer included).
    await notHeld(a.consoles.input(machineId, "va", "alice\r"));
    await notHeld(c.consoles.input(machineId, "vc", "carol\r"));
    // Carol takes it from bob: bob's keys stop at once.
    await c.consoles.take(machineId, "vc", "carol");
    await notHeld(b.consoles.input(machineId, "vb", "bob again\r"));
    await c.consoles.input(machineId, "vc", "carol types\r");
    await until("carol's keys", () => typed().endsWith("carol types\r"));
    expect(typed()).not.toContain("bob again");
    await until("everyone shows carol", () => [a, b, c].every((p) => p.consoles.status(machineId).holder === "carol"));
    // Bob cannot release what he no longer holds; carol can.
    await b.consoles.release(machineId, "vb");
    expect(parseKeyboardHolder((await leaseRow(`keyboard:${machineId}`))!.holder)?.name).toBe("carol");
    await c.consoles.release(machineId, "vc");
    expect((await leaseRow(`keyboard:${machineId}`))!.live).toBe(false);
    await until("nobody holds it anywhere", () => [a, b, c].every((p) => p.consoles.status(machineId).holder === null));
    await notHeld(c.consoles.input(machineId, "vc", "released\r"));

    // Two takes, two audit rows (not one per process).
    const events = await h.store.db.select().from(h.store.t.events).where(sql`kind = 'console.keyboard'`);
    expect(events.map((e) => e.message).sort()).toEqual(["bob took the console keyboard", "carol took the console keyboard"]);

    // The holder leaving releases the keyboard everywhere.
    await a.consoles.take(machineId, "va", "alice");
    await until("alice everywhere", () => [a, b, c].every((p) => p.consoles.status(machineId).holder === "alice"));
    await a.consoles.leave(machineId, "va");
    await until("released by leaving", () => [b, c].every((p) => p.consoles.status(machineId).holder === null));
  });

  it("the owner's death: its lease lapses, one process with viewers takes the stream over, the others see the change; the keyboard stays", async () => {
    const [a, b, c] = [await proc("proc-a"), await proc("proc-b"), await proc("proc-c")];
    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await c.consoles.join(machineId, "vc", "carol");
    await b.consoles.take(machineId, "vb", "bob");
    streams[0]!.push("before the crash\r\n");
    await until("output at B and C", () => [b, c].every((p) => p.text().toString().includes("before the crash")));

    await a.consoles.halt(); // as SIGKILL: nothing released, nothing said
    // While A's lease runs, nobody takes over.
    await Promise.all([b.consoles.tick(), c.consoles.tick()]);
    expect(b.consoles.isOpen(machineId) || c.consoles.isOpen(machineId)).toBe(false);
    // Its lease lapses (here: at once, instead of after leaseMs).
    await h.store.db.execute(sql`UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = ${`console:${machineId}`}`);
    const statusesBefore = { b: b.statuses.length, c: c.statuses.length };
    await Promise.all([b.consoles.tick(), c.consoles.tick()]);
    const owners = [b, c].filter((p) => p.consoles.isOpen(machineId));
    expect(owners).toHaveLength(1);
    const [owner, other] = owners[0] === b ? [b, c] : [c, b];
    expect(streams).toHaveLength(2);
    expect(streams[1]!.proc).toBe(owner.name);
    const row = await leaseRow(`console:${machineId}`);
    expect(row).toMatchObject({ holder: `${owner.name}:1`, live: true, epoch: 2 });

    // The other viewer process sees the new owner's status (a change, not silence) and counts both viewers.
    await until("the other process sees the reopened console", () => other.statuses.length > statusesBefore[other.name === "proc-b" ? "b" : "c"] && other.last()?.state === "open" && other.last()?.viewers === 2);
    // Output of the new stream reaches the other process; the screen so far survived the takeover.
    streams[1]!.push("after the takeover\r\n");
    await until("new output at the other process", () => other.text().toString().includes("after the takeover"));
    const late = await other.consoles.join(machineId, "late", "frank");
    expect(late.recent.toString()).toContain("before the crash");
    expect(late.recent.toString()).toContain("after the takeover");
    // Bob still holds the keyboard (its own lease, renewed by B), and his keys reach the new stream.
    expect(other.consoles.status(machineId).holder).toBe("bob");
    await b.consoles.input(machineId, "vb", "still typing\r");
    await until("keys at the new stream", () => Buffer.concat(streams[1]!.written).toString() === "still typing\r");
  });

  it("stays open while any process has a viewer, closes after the last one anywhere, and frees the lease", async () => {
    const [a, b] = [await proc("proc-a", { graceMs: 20 }), await proc("proc-b", { graceMs: 20 })];
    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await until("A counts B's viewer", () => a.consoles.status(machineId).viewers === 2);
    await a.consoles.leave(machineId, "va");
    await a.consoles.tick(); // a renewal, with B's viewer still reported
    expect(a.consoles.isOpen(machineId)).toBe(true);
    expect(a.consoles.status(machineId).viewers).toBe(1);
    await b.consoles.leave(machineId, "vb");
    await until("closed after the last viewer anywhere", () => !a.consoles.isOpen(machineId) && streams[0]!.closed);
    await until("lease freed", async () => (await leaseRow(`console:${machineId}`))?.live === false);
    expect(b.consoles.status(machineId)).toEqual({ machineId, state: "closed", holder: null, viewers: 0 });
    // The next first viewer, on B this time, opens it there.
    await b.consoles.join(machineId, "vb", "bob");
    expect(b.consoles.isOpen(machineId)).toBe(true);
    expect(streams.at(-1)!.proc).toBe("proc-b");
  });

  it("a viewer process stops counting when its process dies: the owner forgets its viewers after a lease time", async () => {
    const [a, b] = [await proc("proc-a", { graceMs: 20 }), await proc("proc-b")];
    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await until("two viewers", () => a.consoles.status(machineId).viewers === 2);
    await b.consoles.halt();
    await a.consoles.leave(machineId, "va");
    expect(a.consoles.isOpen(machineId)).toBe(true); // B's viewer may still be there
    // B's last report is older than a lease: forgotten at the next renewal (here by moving the report back in time).
    const s = (a.consoles as unknown as { sessions: Map<number, { remote: Map<string, { at: number }> }> }).sessions.get(machineId)!;
    for (const r of s.remote.values()) r.at -= 700_000;
    await a.consoles.tick();
    await until("closed", () => !a.consoles.isOpen(machineId));
  });

  it("lost link connections are reopened: output and keys flow again", async () => {
    const [a, b] = [await proc("proc-a"), await proc("proc-b")];
    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await b.consoles.take(machineId, "vb", "bob");
    const killed = await h.store.db.execute(
      sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ('rackhand-console-listen', 'rackhand-console-notify') AND datname = current_database()`,
    );
    expect(killed.rows).toHaveLength(4);
    // Until both are back, output may be missed; once they are, it arrives, and keys reach the stream again.
    let n = 0;
    await until("output at B again", () => {
      streams[0]!.push(`ping ${++n}\r\n`);
      return b.text().toString().includes("ping");
    });
    await until("keys from B again", async () => {
      await b.consoles.input(machineId, "vb", "k").catch(() => undefined);
      return streams[0]!.written.length > 0;
    });
  });

  it("refuses a channel that is not an identifier", () => {
    expect(() => new ConsoleCluster(h.store.db, { owner: "x:1", url, channel: "console; DROP TABLE leases" })).toThrow(/SQL identifier/);
    expect(() => new ConsoleCluster(h.store.db, { owner: "x 1\n", url })).toThrow(/lease owner/);
    expect(() => new ConsoleCluster(h.store.db, { owner: "x:1", url, leaseMs: 1000, renewMs: 900 })).toThrow(/renewMs/);
  });

  it("refuses hostile machine ids, viewer ids and names; ignores malformed messages on the channel", async () => {
    const [a, b] = [await proc("proc-a"), await proc("proc-b")];
    for (const id of [0, -1, 1.5, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY, "1" as unknown as number]) {
      await expect(a.consoles.join(id, "v1", "alice")).rejects.toMatchObject({ code: "VALIDATION" });
    }
    const hostile = ["", "a\nb", "a\rb", "a\u0000b", "a\\b", "a'b", 'a"b', "$(reboot)", "a;b", "a&b", "../etc", "a|b", "a b", "x".repeat(65), "\u00e9l\u00e8ve", "DROP TABLE leases"];
    for (const v of hostile) {
      await expect(a.consoles.join(machineId, v, "alice")).rejects.toBeInstanceOf(AppError);
      await expect(a.consoles.join(machineId, "v1", v)).rejects.toMatchObject({ code: "VALIDATION" });
    }
    expect(streams).toHaveLength(0);
    expect(await leaseRow(`console:${machineId}`)).toBeUndefined();

    await a.consoles.join(machineId, "va", "alice");
    await b.consoles.join(machineId, "vb", "bob");
    await b.consoles.take(machineId, "vb", "bob");
    await until("A shows bob holding the keyboard", () => a.consoles.status(machineId).holder === "bob");
    // Anyone with NOTIFY rights could write on the channel: nothing malformed is taken.
    const junk = [
      "not json",
      "null",
      JSON.stringify({ t: "i", m: machineId, o: "proc-x:1", b: "not base64 !" }),
      JSON.stringify({ t: "d", m: machineId, o: "proc-a:1", e: 1, s: 99, b: "$(reboot)" }),
      JSON.stringify({ t: "st", m: machineId, o: "proc-x:1", e: 9, st: { machineId, state: "open", holder: "evil|x\n", viewers: 1 } }),
      JSON.stringify({ t: "w", m: "1; DROP TABLE leases", o: "proc-x:1", n: 5 }),
      JSON.stringify({ t: "w", m: machineId, o: "proc x\n", n: 5 }),
      JSON.stringify({ t: "zz", m: machineId, o: "proc-x:1" }),
    ];
    for (const j of junk) await h.store.db.execute(sql`SELECT pg_notify(${channel}, ${j})`);
    expect(junk.map((j) => { try { return validMessage(JSON.parse(j)); } catch { return null; } })).toEqual(junk.map(() => null));
    await b.consoles.input(machineId, "vb", "after junk\r");
    await until("keys still flow", () => Buffer.concat(streams[0]!.written).toString() === "after junk\r");
    expect(a.consoles.status(machineId)).toMatchObject({ viewers: 2, holder: "bob", state: "open" });
    // A keyboard lease whose holder is not well formed counts as nobody's.
    expect(parseKeyboardHolder("proc-a:1|v1|bob|extra")).toBeNull();
    expect(parseKeyboardHolder("proc-a:1|v 1|bob")).toBeNull();
    expect(parseKeyboardHolder("proc-a:1|v1|bob")).toEqual({ process: "proc-a:1", viewerId: "v1", name: "bob" });
  });
});

describe("alone (SQLite or no database URL)", () => {
  it("the factory gives a manager without a cluster when there is no database URL", () => {
    const d = h.domain;
    expect(createConsoleManager(d, { owner: "proc-a:1" }).cluster).toBeUndefined();
  });
});
