/**
 * Power sync: periodically asks every BMC of a machine not in maintenance for its power state. A state that
 * changed behind Rackhand's back becomes a `power.changed` event; failures count towards "unreachable"
 * (bmc-state.ts). Bounded concurrency; the interval is jittered. Started by server/app.ts, stopped on close.
 */
import { eq } from "drizzle-orm";
import type { Domain } from "../context";
import { bmcs, machines } from "../db/schema";
import { readPower } from "./power";
import { getPowerSyncSettings } from "./settings";

export interface SweepStats {
  machines: number;
  ok: number;
  failed: number;
  changed: number;
  durationMs: number;
}

const ACTOR = "system:power-sync";

/** One sweep over all BMCs now. Never throws for a BMC failure. */
export async function sweepPower(d: Domain, concurrency = getPowerSyncSettings(d.db).concurrency): Promise<SweepStats> {
  const started = performance.now();
  // Only machines that have a BMC: the cost of a fleet without BMCs is this one indexed query.
  const rows = d.db
    .select({ id: machines.id, power: machines.powerState })
    .from(bmcs)
    .innerJoin(machines, eq(machines.id, bmcs.machineId))
    .where(eq(machines.maintenance, false))
    .all();
  const stats: SweepStats = { machines: rows.length, ok: 0, failed: 0, changed: 0, durationMs: 0 };
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const r = rows[next++]!;
      try {
        const p = await readPower(d, r.id, ACTOR, "changed outside Rackhand, seen by power sync");
        stats.ok++;
        if (p !== r.power) stats.changed++;
      } catch (err) {
        stats.failed++;
        d.log.debug("power sync: BMC failed", { machineId: r.id, error: String((err as Error).message) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
  stats.durationMs = performance.now() - started;
  return stats;
}

/** The background loop. `stop()` waits for a running sweep to end. */
export class PowerSync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;

  constructor(private readonly d: Domain) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const s = getPowerSyncSettings(this.d.db);
    const jitterMs = (Math.random() * 2 - 1) * s.jitterS * 1000;
    const delay = Math.max(1000, s.intervalS * 1000 + jitterMs);
    this.timer = setTimeout(() => {
      this.running = sweepPower(this.d, s.concurrency)
        .then((st) => this.d.log.debug("power sync sweep", { ...st }))
        .catch((err) => this.d.log.error("power sync sweep failed", { error: String(err) }))
        .finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
