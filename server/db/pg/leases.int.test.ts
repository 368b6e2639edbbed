import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startPgCluster, type PgCluster } from "../../testing/pg-cluster";
import { until } from "../../testing/until";
import { openPgDatabase, type PgDb } from "./client";
import {
  acquireLease,
  BMC_LOCK_NS,
  checkOwner,
  claimBmcSweeps,
  claimSteps,
  finishStep,
  LeaderLease,
  readLease,
  releaseLease,
  renewSteps,
  withBmcLock,
} from "./leases";
import { jobs, machines, steps } from "./schema";

// Several pools on one real PostgreSQL stand for several Rackhand processes (each pool has its own connections);
// the last tests use real child processes.
let cluster: PgCluster;
let url: string;
let dbs: PgDb[];
beforeAll(async () => {
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  dbs = await Promise.all([1, 2, 3, 4].map((i) => openPgDatabase(url, { max: 4, applicationName: `proc${i}` })));
}, 120_000);
afterAll(async () => {
  // The server first: a fast shutdown ends every session, so closing the pools cannot hang on one.
  await cluster?.stop();
  await Promise.all((dbs ?? []).map((d) => d.$client.end()));
});

const db = () => dbs[0]!;

/** A job with `n` ready server steps; returns their ids. */
async function readySteps(n: number): Promise<number[]> {
  const now = new Date();
  const [m] = await db()
    .insert(machines)
    .values({ name: `m-${Math.random().toString(36).slice(2)}`, createdAt: now, updatedAt: now })
    .returning();
  const [j] = await db().insert(jobs).values({ machineId: m!.id, kind: "deploy", state: "running", createdAt: now }).returning();
  const rows = await db()
    .insert(steps)
    .values(Array.from({ length: n }, (_, i) => ({ jobId: j!.id, group: i, name: `s${i}`, runner: "server" as const, state: "ready" })))
    .returning({ id: steps.id });
  return rows.map((r) => r.id);
}

beforeEach(async () => {
  // Each test starts with no claimable step left over from another.
  await db().execute(sql`UPDATE steps SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL WHERE state IN ('ready', 'running')`);
});

describe("step leases (SELECT … FOR UPDATE SKIP LOCKED)", () => {
  it("four processes draining 300 steps at once: every step taken exactly once, attempt 1", async () => {
    const ids = await readySteps(300);
    const taken = new Map<number, string[]>();
    await Promise.all(
      dbs.map(async (d, i) => {
        const owner = `proc${i + 1}`;
        for (;;) {
          const got = await claimSteps(d, owner, { limit: 7, leaseMs: 60_000 });
          if (got.length === 0) return;
          for (const l of got) {
            expect(l.attempt).toBe(1);
            expect(l.takenOver).toBe(false);
            taken.set(l.id, [...(taken.get(l.id) ?? []), owner]);
            expect(await finishStep(d, l, { state: "succeeded" })).toBe(true);
          }
        }
      }),
    );
    expect([...taken.keys()].sort((a, b) => a - b)).toEqual(ids);
    expect([...taken.values()].filter((o) => o.length !== 1)).toEqual([]);
    const left = await db().execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM steps WHERE id = ANY(${sql.param(ids)}::int[]) AND state <> 'succeeded'`);
    expect(left.rows[0]!.n).toBe(0);
  });

  it("a taker does not wait for rows another holds locked: it skips them", async () => {
    const ids = await readySteps(10);
    const a = await dbs[1]!.$client.connect();
    try {
      await a.query("BEGIN");
      const locked = await a.query<{ id: number }>("SELECT id FROM steps WHERE id = ANY($1::int[]) ORDER BY id LIMIT 4 FOR UPDATE", [ids]);
      expect(locked.rows.map((r) => r.id)).toEqual(ids.slice(0, 4));
      // With the first four locked by an open transaction, the claim returns at once with the other six.
      const got = await claimSteps(dbs[2]!, "proc3", { limit: 10, leaseMs: 60_000 });
      expect(got.map((l) => l.id)).toEqual(ids.slice(4));
      await a.query("COMMIT");
      const rest = await claimSteps(dbs[3]!, "proc4", { limit: 10, leaseMs: 60_000 });
      expect(rest.map((l) => l.id)).toEqual(ids.slice(0, 4));
    } finally {
      a.release();
    }
  });

  it("an expired lease is taken over with the same attempt; the former holder can neither renew nor finish it", async () => {
    const [id] = await readySteps(1);
    const [first] = await claimSteps(dbs[0]!, "proc1", { limit: 1, leaseMs: 1500 });
    expect(first).toMatchObject({ id, attempt: 1, owner: "proc1", takenOver: false });
    // While the lease runs nobody else gets the step.
    expect(await claimSteps(dbs[1]!, "proc2", { limit: 5, leaseMs: 60_000 })).toEqual([]);
    const second = await until("the lease to lapse and be taken over", async () => (await claimSteps(dbs[1]!, "proc2", { limit: 5, leaseMs: 60_000 }))[0]);
    expect(second).toMatchObject({ id, attempt: 1, owner: "proc2", takenOver: true });
    expect(second.expiresAt.getTime()).toBeGreaterThan(first!.expiresAt.getTime());
    // The first holder comes back (it was only slow): fenced off.
    expect(await renewSteps(dbs[0]!, "proc1", [id!], 60_000)).toEqual([]);
    expect(await finishStep(dbs[0]!, first!, { state: "failed", error: "late" })).toBe(false);
    expect(await renewSteps(dbs[1]!, "proc2", [id!], 60_000)).toEqual([id]);
    expect(await finishStep(dbs[1]!, second, { state: "succeeded", result: { ok: 1 } })).toBe(true);
    const [row] = await db().select().from(steps).where(sql`${steps.id} = ${id}`);
    expect(row).toMatchObject({ state: "succeeded", error: null, result: { ok: 1 }, leaseOwner: null, leaseExpiresAt: null });
  });

  it("a renewed lease is not taken over", async () => {
    const [id] = await readySteps(1);
    const [first] = await claimSteps(dbs[0]!, "proc1", { limit: 1, leaseMs: 500 });
    expect(await renewSteps(dbs[0]!, "proc1", [id!], 60_000)).toEqual([id]);
    // Past the first lease's end by the database's clock, the renewed one still runs.
    await until("the first lease's end to pass", async () => {
      const r = await db().execute<{ past: boolean }>(sql`SELECT clock_timestamp() > ${first!.expiresAt.toISOString()}::timestamptz AS past`);
      return r.rows[0]!.past;
    });
    expect(await claimSteps(dbs[1]!, "proc2", { limit: 1, leaseMs: 1000 })).toEqual([]);
  });

  it("agent steps and steps in other states are not server leases", async () => {
    const [id] = await readySteps(1);
    await db().execute(sql`UPDATE steps SET runner = 'agent' WHERE id = ${id}`);
    expect(await claimSteps(db(), "proc1", { limit: 5, leaseMs: 1000 })).toEqual([]);
    await db().execute(sql`UPDATE steps SET runner = 'server', state = 'pending' WHERE id = ${id}`);
    expect(await claimSteps(db(), "proc1", { limit: 5, leaseMs: 1000 })).toEqual([]);
  });

  it("refuses hostile owners and bad numbers before any SQL", async () => {
    for (const bad of ["", "a b", "x\ny", "p\r", "p\0", "'; DROP TABLE steps; --", "$(reboot)", "a&b", "../x", "é", "x".repeat(129)]) {
      expect(() => checkOwner(bad)).toThrow(/lease owner/);
      await expect(claimSteps(db(), bad, { limit: 1, leaseMs: 1000 })).rejects.toThrow(/lease owner/);
      await expect(acquireLease(db(), "netboot:x", bad, 1000)).rejects.toThrow(/lease owner/);
    }
    for (const badName of ["", " x", "x y", "a\nb", "a\0", "é", "x".repeat(201)]) {
      await expect(acquireLease(db(), badName, "proc1", 1000)).rejects.toThrow(/lease name/);
    }
    await expect(claimSteps(db(), "proc1", { limit: 0, leaseMs: 1000 })).rejects.toThrow(/limit/);
    await expect(claimSteps(db(), "proc1", { limit: 1, leaseMs: 1.5 })).rejects.toThrow(/leaseMs/);
    await expect(renewSteps(db(), "proc1", [-1], 1000)).rejects.toThrow(/step id/);
    // A name with SQL in it is only a name.
    const s = await acquireLease(db(), "netboot:');DROP_TABLE_leases;--", "proc1", 1000);
    expect(s.held).toBe(true);
    expect((await readLease(db(), "netboot:');DROP_TABLE_leases;--")).holder).toBe("proc1");
  });
});

describe("named leases: the netboot leader of a provisioning network", () => {
  it("of five processes trying at once, exactly one gets a free lease", async () => {
    const name = `netboot:race-${Date.now()}`;
    const all = [...dbs, dbs[0]!];
    const results = await Promise.all(all.map((d, i) => acquireLease(d, name, `p${i}`, 5000)));
    expect(results.filter((r) => r.held)).toHaveLength(1);
    const winner = results.find((r) => r.held)!.holder;
    expect(new Set(results.map((r) => r.holder))).toEqual(new Set([winner]));
  });

  it("the holder renews; others fail until it lapses; the epoch grows at each change of holder", async () => {
    const name = "netboot:prov0";
    const a1 = await acquireLease(dbs[0]!, name, "proc1", 1500);
    expect(a1).toMatchObject({ held: true, holder: "proc1", epoch: 1 });
    const a2 = await acquireLease(dbs[0]!, name, "proc1", 1500);
    expect(a2).toMatchObject({ held: true, epoch: 1 });
    expect(a2.expiresAt!.getTime()).toBeGreaterThanOrEqual(a1.expiresAt!.getTime());
    expect(await acquireLease(dbs[1]!, name, "proc2", 1500)).toMatchObject({ held: false, holder: "proc1" });
    const b = await until("proc1's lease to lapse", async () => {
      const s = await acquireLease(dbs[1]!, name, "proc2", 400);
      return s.held && s;
    });
    expect(b).toMatchObject({ holder: "proc2", epoch: 2 });
    expect(await releaseLease(dbs[0]!, name, "proc1")).toBe(false); // not its lease any more
    expect(await releaseLease(dbs[1]!, name, "proc2")).toBe(true);
    expect(await acquireLease(dbs[2]!, name, "proc3", 400)).toMatchObject({ held: true, epoch: 3 });
  });

  it("LeaderLease: a follower takes over after the leader stops renewing, never while its lease runs", async () => {
    const name = "netboot:prov1";
    const changes: string[] = [];
    const ttlMs = 3000;
    const a = new LeaderLease(dbs[0]!, name, "proc1", { ttlMs, renewMs: 300, onChange: (l, e) => changes.push(`proc1 ${l} ${e}`) });
    const b = new LeaderLease(dbs[1]!, name, "proc2", { ttlMs, renewMs: 300, onChange: (l, e) => changes.push(`proc2 ${l} ${e}`) });
    a.start();
    await until("proc1 to lead", () => a.isLeader());
    b.start();
    try {
      // Both run for a few renewal periods: the leader keeps it.
      for (let i = 0; i < 5; i++) {
        await b.tick();
        expect(b.isLeader()).toBe(false);
        expect(a.isLeader()).toBe(true);
        await new Promise((r) => setTimeout(r, 100));
      }
      // proc1 dies: no release, it just stops renewing.
      await a.stop(false);
      const lastOfA = (await readLease(db(), name)).expiresAt!;
      await until("proc2 to take over", () => b.isLeader(), ttlMs * 10);
      const now = await readLease(db(), name);
      expect(now).toMatchObject({ holder: "proc2", epoch: 2 });
      // proc2's lease began (expiresAt - ttl, by the database's clock) after proc1's had ended: no overlap.
      expect(now.expiresAt!.getTime() - ttlMs).toBeGreaterThanOrEqual(lastOfA.getTime() - 1);
      expect(b.currentEpoch()).toBe(2);
      // A clean stop hands over at once.
      await b.stop(true);
      const c = new LeaderLease(dbs[2]!, name, "proc3", { ttlMs, renewMs: 300 });
      await c.tick();
      expect(c.isLeader()).toBe(true);
      expect(c.currentEpoch()).toBe(3);
      await c.stop(true);
      expect(changes).toEqual(["proc1 true 1", "proc1 false 1", "proc2 true 2", "proc2 false 2"]);
    } finally {
      await a.stop(false);
      await b.stop(false);
    }
  });

  it("LeaderLease: a renewal in flight when stop() is called cannot make the stopped process lead again", async () => {
    const changes: boolean[] = [];
    const l = new LeaderLease(dbs[0]!, "netboot:prov3", "proc1", { ttlMs: 3000, renewMs: 300, onChange: (leader) => changes.push(leader) });
    await l.tick();
    const renewal = l.tick(); // in flight
    await l.stop(false);
    await renewal;
    await l.tick(); // ignored once stopped
    expect(l.isLeader()).toBe(false);
    expect(changes).toEqual([true, false]);
  });

  it("LeaderLease steps down by its own clock when the database stops answering", async () => {
    const name = "netboot:prov2";
    const broken = await openPgDatabase(url, { max: 1 });
    const l = new LeaderLease(broken, name, "proc1", { ttlMs: 600, renewMs: 100 });
    await l.tick();
    expect(l.isLeader()).toBe(true);
    await broken.$client.end(); // every later renewal fails
    await l.tick();
    await until("leadership to end with the unrenewed lease", () => !l.isLeader(), 5000);
    await l.stop(false);
  });

  it("LeaderLease tells its holder it no longer leads when the lease runs out while a renewal still hangs", async () => {
    const name = "netboot:prov4";
    const changes: boolean[] = [];
    const l = new LeaderLease(dbs[0]!, name, "proc1", { ttlMs: 800, renewMs: 200, onChange: (leader) => changes.push(leader) });
    await l.tick();
    expect(changes).toEqual([true]);
    // Another session holds the lease row: the next renewal waits on it (a database that does not answer).
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query("SELECT * FROM leases WHERE name = $1 FOR UPDATE", [name]);
      const hanging = l.tick();
      await until("onChange(false) while the renewal hangs", () => changes.length === 2, 5000);
      expect(changes).toEqual([true, false]);
      expect(l.isLeader()).toBe(false);
      await blocker.query("ROLLBACK");
      await hanging;
    } finally {
      await blocker.end();
    }
    await l.stop(false);
  });
});

describe("power sweeps and per-BMC exclusion", () => {
  it("each BMC is claimed for one interval by exactly one of the processes", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => 10_000 + i);
    const got = await Promise.all(dbs.map((d, i) => claimBmcSweeps(d, `proc${i + 1}`, ids, 60_000)));
    const all = got.flat().sort((a, b) => a - b);
    expect(all).toEqual(ids);
    // Within the interval nobody, the same process included, sweeps them again.
    expect(await claimBmcSweeps(dbs[0]!, "proc1", ids, 60_000)).toEqual([]);
    // After it, they can be claimed again.
    const short = [20_000, 20_001];
    expect(await claimBmcSweeps(dbs[0]!, "proc1", short, 200)).toEqual(short);
    expect(await until("the sweep interval to end", async () => (await claimBmcSweeps(dbs[1]!, "proc2", short, 200)).length === 2 && true)).toBe(true);
  });

  it("no two processes talk to the same BMC at once; different BMCs proceed in parallel", async () => {
    let inside = new Map<string, number>();
    let maxSame = 0;
    let maxAll = 0;
    const talk = (d: PgDb, bmc: { address: string; port: number }) =>
      withBmcLock(d.$client, bmc, async () => {
        const k = `${bmc.address}:${bmc.port}`;
        inside.set(k, (inside.get(k) ?? 0) + 1);
        maxSame = Math.max(maxSame, inside.get(k)!);
        maxAll = Math.max(maxAll, [...inside.values()].reduce((a, b) => a + b, 0));
        await new Promise((r) => setTimeout(r, 30));
        inside.set(k, inside.get(k)! - 1);
      });
    const one = { address: "10.9.0.1", port: 623 };
    const two = { address: "10.9.0.2", port: 623 };
    await Promise.all(dbs.flatMap((d) => [talk(d, one), talk(d, one), talk(d, two)]));
    expect(maxSame).toBe(1);
    expect(maxAll).toBe(2);
    inside = new Map();
  });

  it("a busy BMC fails after the wait with a clear message; a lost connection aborts the holder and frees the BMC", async () => {
    const bmc = { address: "10.9.0.3", port: 6230 };
    let release!: () => void;
    let holderSignal!: AbortSignal;
    const held = withBmcLock(dbs[0]!.$client, bmc, (signal) => {
      holderSignal = signal;
      return new Promise<void>((r) => (release = r));
    });
    await until("the first process to hold the BMC", () => holderSignal);
    const one = await openPgDatabase(url, { max: 1 });
    try {
      await expect(withBmcLock(one.$client, bmc, async () => "never", 200)).rejects.toThrow(/10\.9\.0\.3:6230 is busy/);
      // The wait limit did not stay on the pooled connection.
      expect((await one.execute<{ lock_timeout: string }>(sql`SHOW lock_timeout`)).rows[0]!.lock_timeout).toBe("0");
      expect(await withBmcLock(one.$client, { address: "10.9.0.4", port: 623 }, async () => "free", 200)).toBe("free");
    } finally {
      await one.$client.end();
    }
    // The holder's connection is cut (its process lost the database): the lock goes with it.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const killed = await admin.query<{ n: number }>(
        "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND granted",
        [BMC_LOCK_NS],
      );
      expect(killed.rows[0]!.n).toBe(1);
    } finally {
      await admin.end();
    }
    await until("the holder to see the loss", () => holderSignal.aborted);
    expect(await withBmcLock(dbs[1]!.$client, bmc, async () => "mine", 5000)).toBe("mine");
    release();
    await held;
  });
});

describe("real processes", () => {
  const taker = path.join(path.dirname(fileURLToPath(import.meta.url)), "testing", "lease-taker.ts");
  const runTaker = (...args: string[]) => {
    const child = spawn(process.execPath, ["--import", "tsx", taker, url, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    return { child, exited, out: () => out, err: () => err };
  };

  it("two processes drain the same steps: each step once, all of them", async () => {
    const ids = await readySteps(120);
    const a = runTaker("drain", "childA");
    const b = runTaker("drain", "childB");
    expect(await a.exited, a.err()).toBe(0);
    expect(await b.exited, b.err()).toBe(0);
    const doneA = JSON.parse(a.out()) as number[];
    const doneB = JSON.parse(b.out()) as number[];
    expect([...doneA, ...doneB].sort((x, y) => x - y)).toEqual(ids);
    expect(doneA.filter((id) => doneB.includes(id))).toEqual([]);
  }, 60_000);

  it("a process killed with SIGKILL while holding steps: its leases lapse and another process takes them over", async () => {
    const ids = await readySteps(3);
    const holder = runTaker("hold", "childH", "3");
    const held = await until("the child to hold its steps", () => holder.out().includes("\n") && (JSON.parse(holder.out()) as number[]), 30_000);
    expect(held).toEqual(ids);
    // Alive and renewing: past its first lease (2 s), still nothing to take over.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await claimSteps(db(), "survivor", { limit: 10, leaseMs: 60_000 })).toEqual([]);
    holder.child.kill("SIGKILL");
    await holder.exited;
    const taken = await until("the dead process's leases to be taken over", async () => {
      const got = await claimSteps(db(), "survivor", { limit: 10, leaseMs: 60_000 });
      return got.length > 0 && got;
    });
    expect(taken.map((l) => l.id)).toEqual(ids);
    expect(taken.every((l) => l.takenOver && l.attempt === 1)).toBe(true);
  }, 60_000);
});
