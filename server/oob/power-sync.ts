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
import { and, eq, notInArray } from "drizzle-orm";
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import { bmcs, machines } from "../db/schema";
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
  bmc: typeof bmcs.$inferSelect;
}
/** `bmcError`: the BMC's failure (counts towards unreachable); otherwise our side refused (bad stored parameters). */
type Outcome = { row: Row; power: ChassisPower } | { row: Row; error: string; bmcError: boolean };

/** One sweep over all syncable BMCs now. Never throws for a BMC failure. */
export async function sweepPower(d: Domain, concurrency?: number): Promise<SweepStats> {
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const settings = getPowerSyncSettings(d.db);
  const rows: Row[] = d.db
    .select({ id: machines.id, power: machines.powerState, bmc: bmcs })
    .from(bmcs)
    .innerJoin(machines, eq(machines.id, bmcs.machineId))
    .where(and(eq(machines.maintenance, false), settings.skipStates.length ? notInArray(machines.state, settings.skipStates) : undefined))
    .all();

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
  await Promise.all(Array.from({ length: Math.min(concurrency ?? settings.concurrency, rows.length) }, worker));

  const stats = applySweep(d, outcomes, settings.failureThreshold);
  const cpu = process.cpuUsage(cpu0);
  return { machines: rows.length, ...stats, durationMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, at: new Date().toISOString() };
}

/** Write what differs from what the sweep's query saw, in one transaction; publish after commit. */
function applySweep(d: Domain, outcomes: Outcome[], failureThreshold: number): { ok: number; failed: number; changed: number; written: number } {
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
  d.db.transaction((tx) => {
    for (const o of todo) {
      if ("power" in o) {
        applyBmcOutcome(tx, o.row.id, { ok: true }, ACTOR, failureThreshold, live);
        applyPowerState(tx, o.row.id, o.power, ACTOR, "changed outside Rackhand, seen by power sync", live);
      } else applyBmcOutcome(tx, o.row.id, { ok: false, error: o.error }, ACTOR, failureThreshold, live);
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
  private readonly listeners = new Set<(s: SweepStats) => void>();

  constructor(private readonly d: Domain) {}

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
  sweepNow(): Promise<SweepStats> {
    if (this.running) return this.running;
    clearTimeout(this.timer);
    const run = sweepPower(this.d).then((st) => {
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
    const s = getPowerSyncSettings(this.d.db);
    const jitterMs = (Math.random() * 2 - 1) * s.jitterS * 1000;
    const delay = Math.max(1000, s.intervalS * 1000 + jitterMs);
    this.timer = setTimeout(() => void this.sweepNow().catch(() => undefined), delay);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.d.oob.sync.now) this.d.oob.sync.now = undefined;
    this.d.oob.sync.settingsChanged = undefined;
    await this.running?.catch(() => undefined);
  }
}
