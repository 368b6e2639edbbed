/** The OOB runtime: config, the per-BMC scheduler and the drivers by `bmcs.driver` name. */
import { AppError } from "../../lib/errors";
import type { CallObserver } from "./exec";
import { createFakeDriver } from "./fake";
import { createIpmitoolDriver } from "./ipmitool";
import { BmcScheduler } from "./scheduler";
import type { OobConfig, OobDriver, PowerOperation, ProbeStats, SweepStats } from "./types";

export interface OobRuntime {
  config: OobConfig;
  scheduler: BmcScheduler;
  driver(name: string): OobDriver;
  probeStats: ProbeStats;
  /** The power-sync loop of this process, once started (power-sync.ts registers itself here). */
  sync: PowerSyncControl;
  /** Power actions accepted by oob.powerStart, confirmed in the background (operator/hand-power.ts). */
  operations: Map<string, PowerOperation>;
}

/** Reached from the API: run a sweep now, apply new settings now, read the last sweep. */
export interface PowerSyncControl {
  /** Run a sweep at once (joins the running one if a sweep is under way). Undefined when no loop runs here. */
  now?: () => Promise<SweepStats>;
  /** New settings: reschedule the next sweep from them at once. */
  settingsChanged?: () => void;
  last?: SweepStats;
}

export function createOobRuntime(config: OobConfig, opts: { observe?: CallObserver; extraDrivers?: OobDriver[] } = {}): OobRuntime {
  const scheduler = new BmcScheduler(config);
  const probeStats: ProbeStats = { native: 0, fallback: 0, ipmitool: 0 };
  const drivers = new Map<string, OobDriver>();
  for (const d of [createIpmitoolDriver({ config, scheduler, observe: opts.observe, probeStats }), createFakeDriver(), ...(opts.extraDrivers ?? [])]) drivers.set(d.name, d);
  return {
    config,
    scheduler,
    probeStats,
    sync: {},
    operations: new Map(),
    driver(name) {
      const d = drivers.get(name);
      if (!d) throw new AppError("BMC_UNSUPPORTED", `No out-of-band driver named "${name}"`);
      return d;
    },
  };
}

/** Defaults for production; tests override timeouts and spacing. */
export function defaultOobConfig(dataDir: string, overrides: Partial<OobConfig> = {}): OobConfig {
  return {
    ipmitoolPath: "ipmitool",
    callTimeoutMs: 10_000,
    attempts: 3,
    backoffMs: 500,
    spacingMs: 100,
    confirmTimeoutMs: 20_000,
    statusProbe: "native",
    probeStepTimeoutMs: 1_000,
    consoleDir: `${dataDir}/consoles`,
    transcriptMaxBytes: 1_000_000,
    transcriptKeep: 3,
    consoleGraceMs: 30_000,
    ...overrides,
  };
}
