/**
 * What `/healthz` says about this process: alive, which database, its name among processes, and on PostgreSQL what
 * it holds right now (named leases: netboot leadership, BMC sweeps, hand holds, console streams; leased server steps). A load balancer
 * only needs the status; an operator sees which process does what.
 */
import { and, count, eq, gt, inArray, or, sql } from "drizzle-orm";
import type { Store } from "../db/store";

export interface Health {
  status: "ok";
  uptimeS: number;
  store: "sqlite" | "postgres";
  /** This process's name in leases (host:pid). */
  process: string;
  /** SQLite: the one process does all the work. PostgreSQL: what this process leads and holds now. */
  roles: string[];
  /** PostgreSQL: named leases held, by kind (netboot:<network> in full; sweep, hold and console leases counted). */
  leases?: { netboot: string[]; bmcSweeps: number; handHolds: number; consoles: number };
  /** PostgreSQL: server steps this process runs under its lease. */
  leasedSteps?: number;
}

/** @throws when the database does not answer (the caller answers 503) */
export async function health(store: Store, owner: string): Promise<Health> {
  const base = { status: "ok" as const, uptimeS: Math.round(process.uptime()), store: store.dialect, process: owner };
  const { leases, steps } = store.t;
  if (store.dialect === "sqlite") {
    await store.db.select({ one: sql<number>`1` }).from(leases).limit(1);
    return { ...base, roles: ["all (single process)"] };
  }
  const mine = or(eq(leases.holder, owner), inArray(leases.holder, [`power@${owner}`, `bootdev@${owner}`]));
  const held = await store.db
    .select({ name: leases.name })
    .from(leases)
    .where(and(mine, gt(leases.expiresAt, sql`clock_timestamp()`)));
  const [stepCount] = await store.db
    .select({ n: count() })
    .from(steps)
    .where(and(eq(steps.leaseOwner, owner), eq(steps.state, "running"), gt(steps.leaseExpiresAt, sql`clock_timestamp()`)));
  const netboot = held.filter((l) => l.name.startsWith("netboot:")).map((l) => l.name.slice("netboot:".length));
  const kind = (prefix: string) => held.filter((l) => l.name.startsWith(prefix)).length;
  const leasesHeld = { netboot, bmcSweeps: kind("sweep:"), handHolds: kind("hold:"), consoles: kind("console:") };
  const roles = ["api", "orchestrator", ...netboot.map((n) => `netboot leader (${n})`), ...(leasesHeld.bmcSweeps ? ["power sync"] : []), ...(leasesHeld.consoles ? ["serial consoles"] : [])];
  return { ...base, roles, leases: leasesHeld, leasedSteps: Number(stepCount?.n ?? 0) };
}
