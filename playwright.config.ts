import os from "node:os";
import path from "node:path";
import { defineConfig } from "@playwright/test";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./e2e/chromium";
import { LAB_ADMIN, LAB_PORT } from "./e2e/lab-config";

const PORT = Number(process.env.E2E_PORT ?? 3210);

/** Projects chosen with --project (none: all). Only their servers start: `--project app` brings up no VM. */
const chosen = process.argv.flatMap((a, i, all) => (a === "--project" ? [all[i + 1] ?? ""] : a.startsWith("--project=") ? [a.slice("--project=".length)] : []));
const wants = (name: string) => chosen.length === 0 || chosen.includes(name);
const use = {
  viewport: { width: 1400, height: 900 },
  screenshot: "only-on-failure",
  trace: "retain-on-failure",
  launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
} as const;

/**
 * Browser tests against the production build (`npm run build` runs once before, in scripts/test.sh),
 * in Debian's Chromium. Two projects, two servers:
 *   app — the dashboard on a fresh data directory per run (e2e/serve.mjs);
 *   lab — the virtual lab (lab/cli.ts): one QEMU VM behind an ipmi_sim BMC, Rackhand with its managed dnsmasq
 *         in the lab's network namespace; removed again when the run ends (--down-on-exit).
 */
export default defineConfig({
  testDir: "e2e",
  outputDir: "test-results/e2e",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [["list"], ["json", { outputFile: "test-results/e2e-report.json" }]],
  projects: [
    { name: "app", testIgnore: /lab\.spec\.ts/, use: { ...use, baseURL: `http://127.0.0.1:${PORT}` } },
    { name: "lab", testMatch: /lab\.spec\.ts/, use: { ...use, baseURL: `http://127.0.0.1:${LAB_PORT}` } },
  ],
  webServer: [
    ...(wants("app") ? [appServer()] : []),
    ...(wants("lab") ? [labServer()] : []),
  ],
});

function appServer() {
  return {
    command: "node e2e/serve.mjs",
    url: `http://127.0.0.1:${PORT}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    env: { E2E_PORT: String(PORT) },
    stdout: "pipe",
    stderr: "pipe",
  } as const;
}

function labServer() {
  return {
    // The data directory is fresh per run; the RAM disk and OS image come from the cache the VM test shares.
    command: [
      "rm -rf test-results/lab-data &&",
      "node_modules/.bin/tsx lab/cli.ts up --nodes 1 --prefix rhe2e --net 10.79.0 --bmc-port-base 9660",
      `--port ${LAB_PORT} --data test-results/lab-data --cache ${path.join(os.tmpdir(), "rackhand-lab-cache")} --down-on-exit`,
    ].join(" "),
    url: `http://127.0.0.1:${LAB_PORT}/healthz`,
    reuseExistingServer: false,
    timeout: 300_000,
    env: { RACKHAND_ADMIN_PASSWORD: LAB_ADMIN.password, RACKHAND_DEMO: "false" },
    gracefulShutdown: { signal: "SIGTERM", timeout: 30_000 },
    stdout: "pipe",
    stderr: "pipe",
  } as const;
}
