/**
 * The netboot leader lease with two Rackhand "processes" on one PostgreSQL (vitest project postgres only): two
 * NetbootService instances, each with its own pool, bus (joined by the real bus bridge), data directory and managed
 * dnsmasq, in network namespaces with a real DHCP client (server/testing/netns-dnsmasq.ts, as dnsmasq.int.test.ts;
 * root, iproute2, dnsmasq and busybox-static are required: missing tools fail the test). Only the leader writes its tree and runs dnsmasq; a
 * follower's set_boot_target is written by the leader and confirmed through the database; a leader whose renewal
 * hangs stops dnsmasq by its own clock; a killed leader is replaced, and the new leader's tree has what was enrolled
 * while nobody led.
 */
import fs from "node:fs";
import path from "node:path";
import { eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Domain } from "../context";
import type { PgDb } from "../db/pg/client";
import { readLease } from "../db/pg/leases";
import * as pgSchema from "../db/pg/schema";
import { pgStore, type Store } from "../db/store";
import { EventBus } from "../events/bus";
import { PgBusBridge } from "../events/pg-bus-bridge";
import { health } from "../http/health";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { createHarness, type Harness } from "../testing/harness";
import { DhcpNetns } from "../testing/netns-dnsmasq";
import { until } from "../testing/until";
import { NetbootService } from "./service";
import { storeNetbootSettings } from "./settings";
import { readRequests, requestApply } from "./tree-requests";

const NET = "10.213.79";
const net = new DhcpNetns(`rhld${process.pid}`, NET);
const LEASE = "netboot:provisioning";

interface Proc {
  name: string;
  domain: Domain;
  store: Store;
  bridge: PgBusBridge;
  nb: NetbootService;
  lines: string[];
  dataDir: string;
}

let h: Harness;
let url: string;
const procs: Proc[] = [];
const extraPools: pg.Pool[] = [];

/** A "process": its own pool on the test database, its own bus bridged to the others, data directory and service. */
async function startProc(name: string): Promise<Proc> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  extraPools.push(pool);
  const store = pgStore(drizzle<typeof pgSchema, pg.Pool>(pool, { schema: pgSchema }));
  const bus = new EventBus();
  const bridge = new PgBusBridge(bus, url, { origin: name });
  await bridge.start();
  const domain: Domain = { ...h.domain, store, bus };
  const dataDir = path.join(h.dataDir, name);
  const lines: string[] = [];
  const nb = new NetbootService(domain, {
    dataDir,
    debounceMs: 5,
    dnsmasqCommand: net.dnsmasqCommand,
    onDnsmasqLine: (l) => lines.push(l),
    leader: { owner: name, ttlMs: 3_000, renewMs: 500, confirmTimeoutMs: 15_000, pollMs: 200 },
  });
  const p = { name, domain, store, bridge, nb, lines, dataDir };
  procs.push(p);
  await nb.start();
  return p;
}

const treeFile = (p: Proc, rel: string) => {
  try {
    return fs.readFileSync(path.join(p.dataDir, "netboot", rel), "utf8");
  } catch {
    return undefined;
  }
};
const files = (p: Proc) => (fs.existsSync(path.join(p.dataDir, "netboot")) ? fs.readdirSync(path.join(p.dataDir, "netboot"), { recursive: true }) : []);
const alive = (pid: number | null | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const dhcp = (mac: string) => net.dhcp(mac);

async function deploying(d: Domain, name: string, mac: string, host: number): Promise<number> {
  const m = await enrollMachine(d, { name, bootMac: mac, ip: `${NET}.${host}`, uHeight: 1 }, "test");
  for (const a of ["manage", "provide", "deploy"] as const) await transition(d, m.id, a, { actor: "test" });
  return m.id;
}

beforeAll(async () => {
  h = createHarness();
  await h.store.db.execute(sql`SELECT 1`); // the test database exists from here on
  url = (h.store.db as unknown as PgDb).$client.options.connectionString!;
  net.setup(h.dataDir);
  await storeNetbootSettings(h.domain, { mode: "managed", interface: net.devSrv, serverAddress: `${NET}.1`, rangeStart: `${NET}.100`, rangeEnd: `${NET}.150`, httpBaseUrl: `http://${NET}.1:3000` }, "test");
}, 60_000);

afterAll(async () => {
  try {
    for (const p of procs) {
      await p.nb.stop().catch(() => {});
      await p.bridge.stop().catch(() => {});
    }
    await Promise.all(extraPools.map((p) => p.end().catch(() => {})));
  } finally {
    net.teardown();
    h?.close();
  }
});

describe("netboot leader lease (two processes, one PostgreSQL)", () => {
  let a: Proc;
  let b: Proc;

  it("one leader writes the tree and runs dnsmasq; the follower writes nothing and runs none; /healthz says who leads", async () => {
    const early = await deploying(h.domain, "node-early", "52:54:00:7d:00:01", 51);
    a = await startProc("proc-a");
    b = await startProc("proc-b");
    expect(a.nb.isLeader()).toBe(true);
    expect(b.nb.isLeader()).toBe(false);
    expect(a.nb.status().leadership).toMatchObject({ lease: LEASE, owner: "proc-a", leader: true, epoch: 1 });
    expect(b.nb.status().leadership).toMatchObject({ lease: LEASE, owner: "proc-b", leader: false });
    await until("the leader's dnsmasq", () => a.lines.some((l) => l.includes("TFTP root is")));
    expect(a.nb.status().backend).toMatchObject({ mode: "managed", running: true });
    expect(b.nb.status().backend).toBeNull();
    expect(b.lines).toEqual([]);
    expect(files(b)).toEqual([]);
    expect(treeFile(a, "hosts")).toContain("52:54:00:7d:00:01,10.213.79.51,node-early");
    expect(treeFile(a, "tftp/ipxe/52-54-00-7d-00-01.ipxe")).toContain("rackhand.mode=deploying");
    expect((await health(a.store, "proc-a")).roles).toContain("netboot leader (provisioning)");
    expect((await health(b.store, "proc-b")).roles).not.toContain("netboot leader (provisioning)");
    expect(await dhcp("52:54:00:7d:00:01")).toContain(`ip=${NET}.51 hostname=node-early`);
    expect(early).toBeGreaterThan(0);
  });

  it("set_boot_target on the follower: the leader writes the machine's entries and confirms them through the database", async () => {
    // Changes made through a domain whose bus reaches nobody: the leader hears of the machine only from the request.
    const quiet: Domain = { ...b.domain, bus: new EventBus() };
    const id = await deploying(quiet, "node-quiet", "52:54:00:7d:00:02", 52);
    await a.nb.whenIdle();
    expect(treeFile(a, "tftp/ipxe/52-54-00-7d-00-02.ipxe")).toBeUndefined();
    await b.nb.applyMachine(id);
    expect(treeFile(a, "tftp/ipxe/52-54-00-7d-00-02.ipxe")).toContain("rackhand.mode=deploying");
    expect(files(b)).toEqual([]);
    const r = await readRequests(a.store.db as unknown as PgDb, "provisioning");
    expect(r.applied).toBe(r.requested);
    expect(r.pending.size).toBe(0);
    // With the follower's bus bridge down its hint is lost, and the leader's confirmation event too: the leader finds
    // the request in the database at its next renewal, the follower reads the confirmation there.
    await b.bridge.stop();
    const id2 = await deploying(quiet, "node-nobus", "52:54:00:7d:00:03", 53);
    await b.nb.applyMachine(id2);
    expect(treeFile(a, "tftp/ipxe/52-54-00-7d-00-03.ipxe")).toContain("rackhand.mode=deploying");
    await b.bridge.start();
  });

  it("a leader that cannot write fails the follower's request at once with its error (the step is retried)", async () => {
    const quiet: Domain = { ...b.domain, bus: new EventBus() };
    const id = await deploying(quiet, "node-bad", "52:54:00:7d:00:04", 54);
    const { machines } = h.store.t;
    // A hand-edited row dnsmasq's host line and pxelinux would take for more than a name.
    await h.store.db.update(machines).set({ name: "bad\nLABEL evil" }).where(eq(machines.id, id));
    await expect(b.nb.applyMachine(id)).rejects.toThrow(/boot tree not written by the netboot leader: .*name/);
    expect(files(a).filter((f) => String(f).includes("52-54-00-7d-00-04"))).toEqual([]);
    expect(treeFile(a, "hosts")).not.toContain("evil");
    await h.store.db.update(machines).set({ name: "node-fixed" }).where(eq(machines.id, id));
    await b.nb.applyMachine(id);
    // A NIC dnsmasq has not seen yet gets its own hosts.d file (read on inotify).
    expect(treeFile(a, "hosts.d/52-54-00-7d-00-04")).toBe("52:54:00:7d:00:04,10.213.79.54,node-fixed\n");
    expect(a.nb.status().lastError).toBeNull();
  });

  it("refuses request ids that are no machine id before any SQL", async () => {
    const db = a.store.db as unknown as PgDb;
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 31, Number.MAX_SAFE_INTEGER]) await expect(requestApply(db, "provisioning", bad)).rejects.toThrow(/not a machine id/);
  });

  it("a leader whose renewal hangs stops dnsmasq by its own clock, and leads again once the database answers", async () => {
    const pid = a.nb.status().backend?.pid;
    expect(alive(pid)).toBe(true);
    // Another session holds the lease row: the leader's renewal (an upsert of that row) waits, and its lease runs out.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query("SELECT * FROM leases WHERE name = $1 FOR UPDATE", [LEASE]);
      await until("the leader to step down", () => !a.nb.isLeader(), 15_000);
      await until("its dnsmasq to stop", () => !alive(pid), 10_000);
      expect(a.nb.status().backend).toBeNull();
      expect(b.nb.isLeader()).toBe(false); // the follower's takeover attempt waits on the same row
    } finally {
      await blocker.query("ROLLBACK");
      await blocker.end();
    }
    // The renewals that waited on the row come back with a lease counted from when they were sent, nearly run out:
    // leadership may change hands once more before it settles. Whoever leads then runs dnsmasq.
    await until("a leader with its dnsmasq running", () => [a, b].find((p) => p.nb.isLeader() && p.nb.status().backend?.running), 20_000);
    expect(await dhcp("52:54:00:7d:00:02")).toContain(`ip=${NET}.52 hostname=node-quiet`);
  });

  it("a killed leader is replaced within the lease time; the new leader rewrites its tree from the database, with what was enrolled meanwhile", async () => {
    const leader = await until("a leader", () => [a, b].find((p) => p.nb.isLeader()));
    const follower = leader === a ? b : a;
    const before = await readLease(h.store.db as unknown as PgDb, LEASE);
    const pid = leader.nb.status().backend?.pid;
    // Killed: it stops renewing and gives nothing up (its dnsmasq dies with it).
    await leader.nb.stop({ releaseLease: false });
    await leader.bridge.stop();
    expect(alive(pid)).toBe(false);
    expect((await readLease(h.store.db as unknown as PgDb, LEASE)).holder).toBe(leader.name); // still "held" until it lapses
    // Enrolled while nobody leads; its set_boot_target runs on the survivor and waits for the next leader.
    const id = await deploying(follower.domain, "node-late", "52:54:00:7d:00:05", 55);
    const step = follower.nb.applyMachine(id);
    await until("the survivor to lead", () => follower.nb.isLeader(), 20_000);
    await step;
    const after = await readLease(h.store.db as unknown as PgDb, LEASE);
    expect(after).toMatchObject({ held: true, holder: follower.name, epoch: before.epoch + 1 });
    expect(treeFile(follower, "hosts")).toContain("52:54:00:7d:00:05,10.213.79.55,node-late");
    expect(treeFile(follower, "tftp/ipxe/52-54-00-7d-00-05.ipxe")).toContain("rackhand.mode=deploying");
    // Everything else is in its tree too: it was rewritten from the database, not from what it heard.
    for (const mac of ["01", "02", "03", "04"]) expect(treeFile(follower, "hosts")).toContain(`52:54:00:7d:00:${mac},`);
    await until("the new leader's dnsmasq", () => follower.lines.some((l) => l.includes("TFTP root is")), 15_000);
    expect(await dhcp("52:54:00:7d:00:05")).toContain(`ip=${NET}.55 hostname=node-late`);
    expect((await health(follower.store, follower.name)).roles).toContain("netboot leader (provisioning)");
  });
});
