/**
 * npm run bench:pg-leases [-- --steps 5000 --smoke] — the cost of coordinating several Rackhand processes on one
 * PostgreSQL (server/db/pg/leases.ts), on a private cluster started for the run:
 * - step leases: 1 and 3 "processes" (separate pools) drain N ready server steps with claimSteps (10 a call) and
 *   finishStep; claim latency p50/p95, steps per second, and CPU per step of this process and of PostgreSQL;
 * - netboot leader takeover: the time from the leader's last renewal to a follower leading (ttl 2 s, renew 0.5 s);
 * - BMC exclusion: withBmcLock round trip on a free BMC.
 * Prints its Markdown section and writes it into docs/BENCHMARKS.md (not with --smoke).
 * The domain does not run on PostgreSQL yet: `bench:deploy -- --db postgres` comes with that conversion.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "drizzle-orm";
import { openPgDatabase, type PgDb } from "../server/db/pg/client";
import { claimSteps, finishStep, LeaderLease, withBmcLock } from "../server/db/pg/leases";
import { jobs, machines, steps } from "../server/db/pg/schema";
import { startPgCluster, type PgCluster } from "../server/testing/pg-cluster";
import { writeSection } from "./lib/sections";
import { percentile, round } from "./lib/stats";

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const smoke = process.argv.includes("--smoke");
const N = Number(arg("steps") ?? (smoke ? 200 : 5000));
const TAKEOVERS = smoke ? 1 : 5;

/** CPU (ms) of the PostgreSQL server: the postmaster and every process it started, from /proc. */
function pgCpuMs(cluster: PgCluster): number {
  const pid = Number(fs.readFileSync(path.join(cluster.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const p of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const f = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      if (Number(p) === pid || Number(f[1]) === pid) total += ((Number(f[11]) + Number(f[12])) * 1000) / tick;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

async function readySteps(db: PgDb, n: number): Promise<void> {
  const now = new Date();
  const [m] = await db.insert(machines).values({ name: `bench-${Date.now()}-${n}`, createdAt: now, updatedAt: now }).returning();
  const [j] = await db.insert(jobs).values({ machineId: m!.id, kind: "deploy", state: "running", createdAt: now }).returning();
  for (let i = 0; i < n; i += 1000) {
    const k = Math.min(1000, n - i);
    await db.insert(steps).values(Array.from({ length: k }, (_, x) => ({ jobId: j!.id, group: i + x, name: "power_on", runner: "server" as const, state: "ready" })));
  }
}

interface DrainRow {
  processes: number;
  wallMs: number;
  perSecond: number;
  claimP50: number;
  claimP95: number;
  clientCpuPerStep: number;
  pgCpuPerStep: number;
}

async function drain(cluster: PgCluster, dbs: PgDb[]): Promise<DrainRow> {
  await readySteps(dbs[0]!, N);
  const lat: number[] = [];
  let done = 0;
  const c0 = process.cpuUsage();
  const p0 = pgCpuMs(cluster);
  const t0 = performance.now();
  await Promise.all(
    dbs.map(async (db, i) => {
      for (;;) {
        const s = performance.now();
        const got = await claimSteps(db, `bench${i}`, { limit: 10, leaseMs: 30_000 });
        lat.push(performance.now() - s);
        if (got.length === 0) return;
        for (const l of got) if (await finishStep(db, l, { state: "succeeded" })) done++;
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  if (done !== N) throw new Error(`drained ${done} of ${N} steps`);
  return {
    processes: dbs.length,
    wallMs,
    perSecond: (N / wallMs) * 1000,
    claimP50: percentile(lat, 50),
    claimP95: percentile(lat, 95),
    clientCpuPerStep: (cpu.user + cpu.system) / 1000 / N,
    pgCpuPerStep: (pgCpuMs(cluster) - p0) / N,
  };
}

async function takeover(dbs: PgDb[], round: number): Promise<number> {
  const name = `netboot:bench-${round}`;
  const a = new LeaderLease(dbs[0]!, name, "leader", { ttlMs: 2000, renewMs: 500 });
  const b = new LeaderLease(dbs[1]!, name, "follower", { ttlMs: 2000, renewMs: 500 });
  await a.tick();
  if (!a.isLeader()) throw new Error("the first process did not lead");
  b.start();
  await new Promise((r) => setTimeout(r, 700));
  await a.tick(); // the leader's last renewal
  const stoppedAt = performance.now();
  await a.stop(false);
  while (!b.isLeader()) await new Promise((r) => setTimeout(r, 10));
  const ms = performance.now() - stoppedAt;
  await b.stop(true);
  return ms;
}

async function main(): Promise<void> {
  const cluster = await startPgCluster();
  const pools: PgDb[] = [];
  try {
    const url = await cluster.createDatabase("bench");
    for (let i = 0; i < 3; i++) pools.push(await openPgDatabase(url, { max: 4, applicationName: `bench${i}` }));
    const version = (await pools[0]!.execute<{ v: string }>(sql`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    await drain(cluster, pools.slice(0, 1)); // warm-up: plans, connections, caches
    await pools[0]!.execute(sql`DELETE FROM machines`);
    const rows = [await drain(cluster, pools.slice(0, 1)), await drain(cluster, pools)];
    const takeovers: number[] = [];
    for (let r = 0; r < TAKEOVERS; r++) takeovers.push(await takeover(pools, r));
    const lock: number[] = [];
    for (let i = 0; i < (smoke ? 20 : 500); i++) {
      const s = performance.now();
      await withBmcLock(pools[i % 3]!.$client, { address: "10.0.0.1", port: 623 }, async () => undefined);
      lock.push(performance.now() - s);
    }
    const md = [
      "## PostgreSQL coordination (`npm run bench:pg-leases`)",
      "",
      `Private PostgreSQL ${version} (unix socket, fsync off as in the tests), ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}, ${new Date().toISOString()}. ${N} ready server steps per row, claimed 10 at a time, each finished with its fencing guard.`,
      "",
      "| processes | wall (ms) | steps/s | claim p50 (ms) | claim p95 (ms) | client CPU/step (ms) | PostgreSQL CPU/step (ms) |",
      "|---|---|---|---|---|---|---|",
      ...rows.map((r) => `| ${r.processes} | ${round(r.wallMs, 0)} | ${round(r.perSecond, 0)} | ${round(r.claimP50, 2)} | ${round(r.claimP95, 2)} | ${round(r.clientCpuPerStep, 3)} | ${round(r.pgCpuPerStep, 3)} |`),
      "",
      `Netboot leader takeover after the leader's last renewal (ttl 2000 ms, renew 500 ms; bound: ttl + renew = 2500 ms): ${takeovers.map((t) => round(t, 0)).join(", ")} ms.`,
      `BMC lock round trip (free BMC, ${lock.length} calls): p50 ${round(percentile(lock, 50), 2)} ms, p95 ${round(percentile(lock, 95), 2)} ms.`,
    ].join("\n");
    console.log(md);
    if (!smoke) writeSection(path.join(process.cwd(), "docs", "BENCHMARKS.md"), "pg-leases", md);
  } finally {
    await Promise.all(pools.map((p) => p.$client.end()));
    await cluster.stop();
  }
}

await main();
