import v8 from "node:v8";
import vm from "node:vm";

/**
 * A full garbage collection once the server has gone quiet after a burst. A large answer (all 10,000 machines, a
 * bulk enrollment) leaves tens of MB of garbage in the old generation; V8 collects it only when later allocation
 * asks for it, and Node sends V8 no idle notifications, so on an idle server the garbage (and the RSS) stays for
 * minutes. This collects it when nothing is happening: at most once per `intervalMs`, only when no request arrived
 * for `quietMs`, none is still being answered, and the heap grew by at least `growthBytes` since the last collection.
 * Its pause (tens of ms at 100 MB) falls in a quiet moment by construction.
 *
 * A request counts from its start to its end (`begin`/`end`): a long one (a bulk action on 10,000 machines runs for
 * seconds) is not a quiet moment. Collecting in the middle of it found its working set alive and made that the
 * baseline, so the garbage of the burst after it stayed under the threshold and the RSS at rest stayed high
 * (bench:list's API-only curve: 134 MiB 15 s after the burst, 45 MiB of heap "used").
 */
export interface IdleGcOptions {
  intervalMs: number;
  quietMs: number;
  growthBytes: number;
}

/**
 * V8's heap: `used` (live objects and garbage not yet collected) and `total` (what it holds from the system). Either
 * growing by `growthBytes` calls for a collection: V8's own full collections (which do not compact) can bring `used`
 * back under the threshold while `total`, and the RSS, stay at the burst's high-water mark (seen: 45 MiB used in
 * 79 MiB held, RSS 165 MiB at rest; compacted, 114 MiB).
 */
export interface HeapSize {
  used: number;
  total: number;
}

export const IDLE_GC_DEFAULTS: IdleGcOptions = { intervalMs: 5_000, quietMs: 2_000, growthBytes: 32 * 2 ** 20 };

export class IdleGc {
  private lastActivity = 0;
  private inFlight = 0;
  private baseline: HeapSize;
  /** How many collections ran (for tests and metrics). */
  collections = 0;

  constructor(
    private readonly opts: IdleGcOptions,
    private readonly deps: { now: () => number; heap: () => HeapSize; gc: () => void },
  ) {
    this.baseline = deps.heap();
  }

  /** A request that is not tracked to its end (e.g. an agent's long-poll, which waits without allocating). */
  activity(): void {
    this.lastActivity = this.deps.now();
  }

  /** A request starts; call `end` once when it is answered or its connection closed. */
  begin(): void {
    this.inFlight++;
    this.lastActivity = this.deps.now();
  }

  end(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.lastActivity = this.deps.now();
  }

  /** One check (run every intervalMs): collects when quiet and grown. */
  tick(): boolean {
    if (this.inFlight > 0) return false;
    if (this.deps.now() - this.lastActivity < this.opts.quietMs) return false;
    const heap = this.deps.heap();
    if (heap.used - this.baseline.used < this.opts.growthBytes && heap.total - this.baseline.total < this.opts.growthBytes) return false;
    this.deps.gc();
    this.collections++;
    this.baseline = this.deps.heap();
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

/** Start the idle collector; returns the collector (its request hooks) and a stop function. */
export function startIdleGc(opts: IdleGcOptions = IDLE_GC_DEFAULTS): { stop: () => void; collector: IdleGc } {
  const heap = (): HeapSize => {
    const m = process.memoryUsage();
    return { used: m.heapUsed, total: m.heapTotal };
  };
  const collector = new IdleGc(opts, { now: Date.now, heap, gc: compactingGc() });
  const timer = setInterval(() => collector.tick(), opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer), collector };
}
