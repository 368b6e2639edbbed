import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { signIn, snap } from "./fixtures";

/**
 * The demo lab as `npm start` runs it (RACKHAND_DEMO=true): a second production server on its own data directory
 * and port, started by this file. A deploy of a seeded machine finishes with a simulated agent, and the UI says so:
 * the machine's badge, the Jobs section, the inventory, and the agent's own log lines.
 */
const DEMO = { name: "admin", password: "e2e-demo-password" };
const dataDir = path.resolve("test-results/e2e-demo-data");
let server: ChildProcess | null = null;
let baseURL = "";

test.beforeAll(async () => {
  fs.rmSync(dataDir, { recursive: true, force: true });
  // A port of its own, away from the app (3210) and lab (3240) servers and other helpers' runs.
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  baseURL = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, ["dist/server.mjs"], {
    stdio: ["ignore", "inherit", "inherit"],
    env: {
      ...process.env,
      NODE_ENV: "production",
      NEXT_TELEMETRY_DISABLED: "1",
      RACKHAND_DATA_DIR: dataDir,
      RACKHAND_HOST: "127.0.0.1",
      PORT: String(port),
      RACKHAND_ADMIN_PASSWORD: DEMO.password,
      RACKHAND_DEMO: "true",
    },
  });
  await expect
    .poll(
      async () => {
        expect(server?.exitCode, "the demo server exited").toBeNull();
        return (await fetch(`${baseURL}/healthz`).catch(() => null))?.status;
      },
      { timeout: 60_000 },
    )
    .toBe(200);
});

test.afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test("demo lab: a deploy finishes with a simulated agent, and the UI labels it simulated", async ({ browser }) => {
  test.setTimeout(120_000);
  const ctx = await browser.newContext({ baseURL });
  const page = await ctx.newPage();
  await signIn(page, DEMO);
  // node-01-02 is seeded Available with the demo image profile (server/demo/seed.ts).
  await page.goto("/machines?q=node-01-02");
  await page.getByRole("link", { name: "node-01-02", exact: true }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Available");
  await expect(page.getByTestId("simulated-agent")).toHaveCount(0);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Deploy" }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Deploying");

  // The simulated agent boots a few seconds later and runs every agent step over the real agent API.
  await expect(page.getByTestId("machine-state")).toContainText("Deployed", { timeout: 90_000 });
  await expect(page.getByTestId("simulated-agent")).toHaveText("Simulated agent (demo)");
  await expect(page.getByTestId("simulated-jobs")).toContainText("run by a simulated agent; nothing is downloaded or written to a disk");
  await expect(page.getByText("Reported by a simulated agent (demo lab), not by hardware.")).toBeVisible();
  await expect(page.getByRole("log")).toContainText("write_image: simulated line 0");
  await snap(page, "demo-simulated-deploy");
  await ctx.close();
});
