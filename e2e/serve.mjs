// Start the production server for the browser tests on a fresh data directory (deleted first).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const dataDir = path.resolve("test-results/e2e-data");
fs.rmSync(dataDir, { recursive: true, force: true });
if (!fs.existsSync("dist/server.mjs") || !fs.existsSync(".next/BUILD_ID")) {
  console.error("e2e: no production build; run `npm run build` first (scripts/test.sh does)");
  process.exit(1);
}
const child = spawn(process.execPath, ["dist/server.mjs"], {
  stdio: "inherit",
  env: {
    ...process.env,
    NODE_ENV: "production",
    NEXT_TELEMETRY_DISABLED: "1",
    RACKHAND_DATA_DIR: dataDir,
    RACKHAND_HOST: "127.0.0.1",
    PORT: process.env.E2E_PORT ?? "3210",
    RACKHAND_ADMIN_PASSWORD: "e2e-admin-password",
    RACKHAND_DEMO: "false",
  },
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code) => process.exit(code ?? 0));
