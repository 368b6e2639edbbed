/**
 * Power sync: periodically asks every BMC whose power can drift for its power state. A state that changed behind
 * Rackhand's back becomes a `power.changed` event; failures count towards "unreachable" (bmc-state.ts).
 *
 * Cost model (issue 15): one indexed query selects what can drift (a BMC, not in maintenance, not in a state
 * whose power sync is off); the reads go out with bounded concurrency through the driver (the native RMCP+ probe
 * for ipmitool BMCs, rmcp/probe.ts); the outcomes are compared with what the query returned and **only
 * differences are written, all in one transaction**: a power change, a reachability change, or a last-seen time
 * older than LAST_SEEN_REFRESH_MS. A sweep over a quiet fleet writes nothing.
 *
 * Started by server/app.ts; registers itself in `d.oob.sync` so the API can run a sweep now and apply new
 * settings at once. The interval is jittered.
 */
import { and, eq, inArray, notInArray } from "drizzle-orm";
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import { claimBmcSweeps, processOwner } from "../db/pg/leases";
import type { PgDb } from "../db/pg/client";
import { lockMachines, storeOf, type Tables } from "../db/store";
import { applyBmcOutcome, applyPowerState } from "./bmc-state";
import { BmcError } from "./errors";
import { getPowerSyncSettings } from "./settings";
import type { BmcTarget, ChassisPower, SweepStats } from "./types";

export type { SweepStats } from "./types";

const ACTOR = "system:power-sync";
/** A healthy BMC's `last_seen` is rewritten at most this often (it is "seen within the last 5 minutes"). */
export const LAST_SEEN_REFRESH_MS = 5 * 60_000;

interface Row {
  id: number;
  power: string;
  bmc: Tables["bmcs"]["$inferSelect"];
}

export interface SweepOptions {
  /** Parallel BMC reads (default: the settings'). */
  concurrency?: number;
  /** PostgreSQL: this process's name in the sweep leases (default host:pid). */
  owner?: string;
  /**
   * PostgreSQL: sweep every syncable BMC, leased or not ("sync now" asked by an operator). Without it each BMC is
   * swept by one process per interval: those whose sweep lease (claimBmcSweeps) this process gets.
   */
  all?: boolean;
}

/** How long one process keeps the right to sweep a BMC: a little less than the shortest gap between two sweeps. */
export function sweepLeaseMs(s: { intervalS: number; jitterS: number }): number {
  return Math.max(1000, Math.floor((s.intervalS - s.jitterS) * 900));
}
/** `bmcError`: the BMC's failure (counts towards unreachable); otherwise our side refused (bad stored parameters). */
type Outcome = { row: Row; power: ChassisPower } | { row: Row; error: string; bmcError: boolean };

/** One sweep over all syncable BMCs now. Never throws for a BMC failure. */
export async function sweepPower(d: Domain, opts: number | SweepOptions = {}): Promise<SweepStats> {
  const o: SweepOptions = typeof opts === "number" ? { concurrency: opts } : opts;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const store = storeOf(d);
  const { machines, bmcs } = store.t;
  const settings = await getPowerSyncSettings(store);
  const syncable = and(eq(machines.maintenance, false), settings.skipStates.length ? notInArray(machines.state, settings.skipStates) : undefined);
  const select = (where: ReturnType<typeof and>) =>
    store.db.select({ id: machines.id, power: machines.powerState, bmc: bmcs }).from(bmcs).innerJoin(machines, eq(machines.id, bmcs.machineId)).where(where);
  let rows: Row[];
  if (store.dialect === "postgres" && !o.all) {
    // Several processes: each BMC goes to the one that leases it first in this interval.
    const ids = (await store.db.select({ id: bmcs.machineId }).from(bmcs).innerJoin(machines, eq(machines.id, bmcs.machineId)).where(syncable)).map((r) => r.id);
    const mine = await claimBmcSweeps(store.db as unknown as PgDb, o.owner ?? processOwner(), ids, sweepLeaseMs(settings));
    rows = mine.length ? await select(and(syncable, inArray(machines.id, mine))) : [];
  } else rows = await select(syncable);

  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const row = rows[next++]!;
      try {
        const driver = d.oob.driver(row.bmc.driver);
        const t: BmcTarget = {
          machineId: row.id,
          address: row.bmc.address,
          port: row.bmc.port,
          username: row.bmc.username,
          password: d.secrets.decrypt(row.bmc.passwordEncrypted),
          privilege: row.bmc.privilege,
          cipherSuite: row.bmc.cipherSuite,
        };
        driver.power.validate(t);
        outcomes.push({ row, power: await driver.power.getPower(t) });
      } catch (err) {
        outcomes.push({ row, error: (err as Error).message, bmcError: err instanceof BmcError });
        d.log.debug("power sync: BMC failed", { machineId: row.id, error: String((err as Error).message) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? settings.concurrency, rows.length) }, worker));

  const stats = await applySweep(d, outcomes, settings.failureThreshold);
  const cpu = process.cpuUsage(cpu0);
  return { machines: rows.length, ...stats, durationMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, at: new Date().toISOString() };
}

/** Write what differs from what the sweep's query saw, in one transaction; publish after commit. */
async function applySweep(d: Domain, outcomes: Outcome[], failureThreshold: number): Promise<{ ok: number; failed: number; changed: number; written: number }> {
  const now = Date.now();
  let ok = 0;
  let failed = 0;
  let changed = 0;
  const todo: Outcome[] = [];
  for (const o of outcomes) {
    const b = o.row.bmc;
    if ("power" in o) {
      ok++;
      if (o.power !== o.row.power) changed++;
      const stale = !b.lastSeen || now - b.lastSeen.getTime() >= LAST_SEEN_REFRESH_MS;
      if (o.power !== o.row.power || b.consecutiveFailures !== 0 || !b.reachable || b.lastError !== null || stale) todo.push(o);
    } else {
      failed++;
      if (o.bmcError) todo.push(o);
    }
  }
  if (!todo.length) return { ok, failed, changed, written: 0 };
  const live: LiveEvent[] = [];
  const store = storeOf(d);
  todo.sort((a, b) => a.row.id - b.row.id);
  await store.transaction(async (tx) => {
    live.length = 0; // PostgreSQL may run the transaction again
    // All rows locked at once, in id order (machines before anything else): no deadlock with a job or another sweep.
    await lockMachines(
      tx,
      todo.map((o) => o.row.id),
    );
    for (const o of todo) {
      if ("power" in o) {
        await applyBmcOutcome(store, tx, o.row.id, { ok: true }, ACTOR, failureThreshold, live);
        await applyPowerState(store, tx, o.row.id, o.power, ACTOR, "changed outside Rackhand, seen by power sync", live);
      } else await applyBmcOutcome(store, tx, o.row.id, { ok: false, error: o.error }, ACTOR, failureThreshold, live);
    }
  });
  for (const e of live) d.bus.publish(e);
  return { ok, failed, changed, written: todo.length };
}

/** The background loop. `stop()` waits for a running sweep to end. */
export class PowerSync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepStats> | undefined;
  private stopped = true;
  private generation = 0;
  private readonly listeners = new Set<(s: SweepStats) => void>();

  constructor(
    private readonly d: Domain,
    /** PostgreSQL: this process's name in the sweep leases. */
    private readonly owner = processOwner(),
  ) {}

  /** Called after every sweep (metrics). */
  onSweep(fn: (s: SweepStats) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.d.oob.sync.now = () => this.sweepNow();
    this.d.oob.sync.settingsChanged = () => this.reschedule();
    this.schedule();
  }

  /** A sweep now; if one is running, its result. The next periodic sweep is counted from this one's end. */
  sweepNow(asked = true): Promise<SweepStats> {
    if (this.running) return this.running;
    clearTimeout(this.timer);
    // Asked by an operator: every BMC now, leased to another process or not (per-BMC exclusion still holds).
    const run = sweepPower(this.d, { owner: this.owner, all: asked }).then((st) => {
      this.d.oob.sync.last = st;
      this.d.log.debug("power sync sweep", { ...st });
      this.d.bus.publish({ type: "power.sweep", machines: st.machines, ok: st.ok, failed: st.failed, changed: st.changed, durationMs: st.durationMs, at: st.at });
      for (const l of this.listeners) l(st);
      return st;
    });
    this.running = run;
    void run
      .catch((err) => this.d.log.error("power sync sweep failed", { error: String(err) }))
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
    return run;
  }

  /** New settings: the next sweep is planned from them now, not after the old interval. */
  private reschedule(): void {
    if (this.stopped || this.running) return; // a running sweep schedules the next one from the new settings itself
    clearTimeout(this.timer);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const gen = ++this.generation;
    void getPowerSyncSettings(storeOf(this.d)).then(
      (s) => {
        if (this.stopped || gen !== this.generation) return; // stopped, or scheduled again meanwhile
        const jitterMs = (Math.random() * 2 - 1) * s.jitterS * 1000;
        const delay = Math.max(1000, s.intervalS * 1000 + jitterMs);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.sweepNow(false).catch(() => undefined), delay);
        this.timer.unref();
      },
      (err) => {
        // The database is unreachable: try again in a minute rather than never.
        this.d.log.error("power sync: cannot read its settings", { error: String(err) });
        if (this.stopped || gen !== this.generation) return;
        this.timer = setTimeout(() => this.schedule(), 60_000);
        this.timer.unref();
      },
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.d.oob.sync.now) this.d.oob.sync.now = undefined;
    this.d.oob.sync.settingsChanged = undefined;
    await this.running?.catch(() => undefined);
  }
}
