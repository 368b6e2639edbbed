/** The OOB runtime: config, the per-BMC scheduler and the drivers by `bmcs.driver` name. */
import { AppError } from "../../lib/errors";
import type { CallObserver } from "./exec";
import { createFakeDriver } from "./fake";
import { createIpmitoolDriver } from "./ipmitool";
import { BmcScheduler } from "./scheduler";
import type { OobConfig, OobDriver } from "./types";

export interface OobRuntime {
  config: OobConfig;
  scheduler: BmcScheduler;
  driver(name: string): OobDriver;
}

export function createOobRuntime(config: OobConfig, opts: { observe?: CallObserver; extraDrivers?: OobDriver[] } = {}): OobRuntime {
  const scheduler = new BmcScheduler(config);
  const drivers = new Map<string, OobDriver>();
  for (const d of [createIpmitoolDriver({ config, scheduler, observe: opts.observe }), createFakeDriver(), ...(opts.extraDrivers ?? [])]) drivers.set(d.name, d);
  return {
    config,
    scheduler,
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
    consoleDir: `${dataDir}/consoles`,
    transcriptMaxBytes: 1_000_000,
    transcriptKeep: 3,
    consoleGraceMs: 30_000,
    ...overrides,
  };
}
