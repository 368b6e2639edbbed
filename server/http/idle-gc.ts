import v8 from "node:v8";
import vm from "node:vm";

/**
 * A full garbage collection once the server has gone quiet after a burst. A large answer (all 10,000 machines, a
 * bulk enrollment) leaves tens of MB of garbage in the old generation; V8 collects it only when later allocation
 * asks for it, and Node sends V8 no idle notifications, so on an idle server the garbage (and the RSS) stays for
 * minutes. This collects it when nothing is happening: at most once per `intervalMs`, only when no request arrived
 * for `quietMs` and the heap grew by at least `growthBytes` since the last collection. Its pause (tens of ms at
 * 100 MB) falls in a quiet moment by construction.
 */
export interface IdleGcOptions {
  intervalMs: number;
  quietMs: number;
  growthBytes: number;
}

export const IDLE_GC_DEFAULTS: IdleGcOptions = { intervalMs: 5_000, quietMs: 2_000, growthBytes: 32 * 2 ** 20 };

export class IdleGc {
  private lastActivity = 0;
  private baseline: number;
  /** How many collections ran (for tests and metrics). */
  collections = 0;

  constructor(
    private readonly opts: IdleGcOptions,
    private readonly deps: { now: () => number; heapUsed: () => number; gc: () => void },
  ) {
    this.baseline = deps.heapUsed();
  }

  /** Call on every request. */
  activity(): void {
    this.lastActivity = this.deps.now();
  }

  /** One check (run every intervalMs): collects when quiet and grown. */
  tick(): boolean {
    if (this.deps.now() - this.lastActivity < this.opts.quietMs) return false;
    if (this.deps.heapUsed() - this.baseline < this.opts.growthBytes) return false;
    this.deps.gc();
    this.collections++;
    this.baseline = this.deps.heapUsed();
    return true;
  }
}

/** V8's gc() without starting node with --expose-gc (the flag set at run time, the function taken from a fresh context). */
export function exposeGc(): () => void {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as unknown;
  if (typeof gc !== "function") throw new Error("V8 did not expose gc()");
  return gc as () => void;
}

/** Start the idle collector; returns its activity hook and a stop function. */
export function startIdleGc(opts: IdleGcOptions = IDLE_GC_DEFAULTS): { activity: () => void; stop: () => void; collector: IdleGc } {
  const collector = new IdleGc(opts, { now: Date.now, heapUsed: () => process.memoryUsage().heapUsed, gc: exposeGc() });
  const timer = setInterval(() => collector.tick(), opts.intervalMs);
  timer.unref();
  return { activity: () => collector.activity(), stop: () => clearInterval(timer), collector };
}
