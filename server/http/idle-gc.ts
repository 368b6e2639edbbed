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

/**
 * A full collection that also compacts the old generation. After a burst, V8's own heuristics often leave it
 * half-empty pages (bench:list at 10,000 machines: 26 MB live in 73 MB of heap, RSS 182 MiB 15 s later; compacted:
 * 135 MiB). V8 has no API for one compacting collection, so the flag is switched on for this call only; if the flag
 * cannot be set, it is a plain full collection. It costs more than a plain one (≈100–200 ms at 30 MB live), which
 * is why only the idle collector uses it.
 */
export function compactingGc(gc: () => void = exposeGc()): () => void {
  return () => {
    let set = false;
    try {
      v8.setFlagsFromString("--compact-on-every-full-gc");
      set = true;
    } catch {
      // Flags frozen by this V8: a plain full collection.
    }
    try {
      gc();
    } finally {
      if (set) v8.setFlagsFromString("--no-compact-on-every-full-gc");
    }
  };
}

/** Start the idle collector; returns its activity hook and a stop function. */
export function startIdleGc(opts: IdleGcOptions = IDLE_GC_DEFAULTS): { activity: () => void; stop: () => void; collector: IdleGc } {
  const collector = new IdleGc(opts, { now: Date.now, heapUsed: () => process.memoryUsage().heapUsed, gc: compactingGc() });
  const timer = setInterval(() => collector.tick(), opts.intervalMs);
  timer.unref();
  return { activity: () => collector.activity(), stop: () => clearInterval(timer), collector };
}
