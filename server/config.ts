import path from "node:path";
import { z } from "zod";
import type { OobConfig } from "./oob/types";

/**
 * Process configuration, read once from the environment by the entry point and injected everywhere else.
 * Domain modules never read process.env themselves.
 */
const envSchema = z.object({
  RACKHAND_DATA_DIR: z.string().default("./data"),
  RACKHAND_DATABASE_URL: z.string().optional(),
  RACKHAND_HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  RACKHAND_ADMIN_PASSWORD: z.string().min(10, "RACKHAND_ADMIN_PASSWORD must have at least 10 characters").optional(),
  RACKHAND_SECRET_KEY: z.string().optional(),
  RACKHAND_SESSION_TTL_HOURS: z.coerce.number().positive().default(168),
  RACKHAND_SECURE_COOKIES: z.enum(["true", "false"]).default("false"),
  RACKHAND_DEMO: z.enum(["true", "false"]).default("false"),
  RACKHAND_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  NODE_ENV: z.string().default("production"),
  RACKHAND_IPMITOOL: z.string().default("ipmitool"),
  RACKHAND_IPMI_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  RACKHAND_IPMI_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  RACKHAND_BMC_SPACING_MS: z.coerce.number().int().min(0).default(100),
  /** How status reads reach BMCs: Rackhand's own RMCP+ probe with ipmitool as fallback, or ipmitool only. */
  RACKHAND_BMC_STATUS_PROBE: z.enum(["native", "ipmitool"]).default("native"),
  RACKHAND_POWER_SYNC: z.enum(["true", "false"]).default("true"),
  /** false: serve the API, agent API and sockets without the Next.js UI (process-level tests need no UI build). */
  RACKHAND_UI: z.enum(["true", "false"]).default("true"),
  RACKHAND_CONSOLE_GRACE_S: z.coerce.number().min(0).default(30),
  /** How managed-mode netboot starts dnsmasq: a program and its leading arguments, split on spaces (no shell). */
  RACKHAND_DNSMASQ_COMMAND: z.string().trim().min(1).default("dnsmasq"),
});

export interface Config {
  dataDir: string;
  /** postgres://… selects PostgreSQL instead of the SQLite file under dataDir (server/db/client.ts openStore). */
  databaseUrl?: string;
  host: string;
  port: number;
  adminPassword?: string;
  secretKey?: string;
  sessionTtlMs: number;
  secureCookies: boolean;
  /** Seed a demo lab (racks and machines on the fake driver) into an empty database. */
  demo: boolean;
  logLevel: "debug" | "info" | "warn" | "error";
  dev: boolean;
  /** Serve the Next.js UI (off in HTTP-level tests, which need no build). */
  ui: boolean;
  /** Run the power sync loop (interval etc. are settings in the database). */
  powerSync: boolean;
  /** Out-of-band knobs (see server/oob/types.ts OobConfig); unset keys take defaults. */
  oob: Partial<OobConfig>;
  /** Program + leading arguments used to run dnsmasq in managed netboot mode. */
  dnsmasqCommand: string[];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  return {
    dataDir: path.resolve(e.RACKHAND_DATA_DIR),
    databaseUrl: e.RACKHAND_DATABASE_URL || undefined,
    host: e.RACKHAND_HOST,
    port: e.PORT,
    adminPassword: e.RACKHAND_ADMIN_PASSWORD,
    secretKey: e.RACKHAND_SECRET_KEY,
    sessionTtlMs: e.RACKHAND_SESSION_TTL_HOURS * 3600_000,
    secureCookies: e.RACKHAND_SECURE_COOKIES === "true",
    demo: e.RACKHAND_DEMO === "true",
    logLevel: e.RACKHAND_LOG_LEVEL,
    dev: e.NODE_ENV === "development",
    ui: e.RACKHAND_UI === "true",
    powerSync: e.RACKHAND_POWER_SYNC === "true",
    oob: {
      ipmitoolPath: e.RACKHAND_IPMITOOL,
      callTimeoutMs: e.RACKHAND_IPMI_TIMEOUT_MS,
      attempts: e.RACKHAND_IPMI_ATTEMPTS,
      spacingMs: e.RACKHAND_BMC_SPACING_MS,
      consoleGraceMs: e.RACKHAND_CONSOLE_GRACE_S * 1000,
      statusProbe: e.RACKHAND_BMC_STATUS_PROBE,
    },
    dnsmasqCommand: e.RACKHAND_DNSMASQ_COMMAND.split(/\s+/),
    ...overrides,
  };
}
