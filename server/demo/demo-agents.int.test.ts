/**
 * The demo lab finishes a deploy: `startApp` with RACKHAND_DEMO=true (as `npm start`), a deploy of an Available
 * fake-driver machine through tRPC over HTTP, run to the end by a simulated agent over the real agent API.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { until } from "../testing/until";
import { testDatabaseEnv } from "../testing/test-store";

const ADMIN_PASSWORD = "demo-agents-admin-pw";
let dataDir: string;
let app: App;
let cookie: string;

async function trpc(proc: string, input: unknown) {
  const r = await fetch(`${app.url}/api/trpc/${proc}`, { method: "POST", headers: { "content-type": "application/json", cookie }, body: JSON.stringify(input) });
  const json = (await r.json()) as { result?: { data: unknown } };
  expect(r.status, JSON.stringify(json)).toBe(200);
  return json.result!.data;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-demo-"));
  const config = loadConfig(
    { ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD, RACKHAND_POWER_SYNC: "false", RACKHAND_DEMO: "true" },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  const r = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "admin", password: ADMIN_PASSWORD }) });
  cookie = r.headers.getSetCookie()[0]!.split(";")[0]!;
});

afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("demo lab with simulated agents", () => {
  it("deploys an Available machine to Deployed; its inventory and lines say simulated", async () => {
    const { db, t } = app.domain.store;
    const m = (await db.select().from(t.machines).where(and(eq(t.machines.state, "available"), eq(t.machines.maintenance, false))).orderBy(t.machines.id))[0]!;
    expect(m.osProfileId).not.toBeNull();
    await trpc("machines.action", { id: m.id, action: "deploy" });
    await until("deployed", async () => (await db.select({ s: t.machines.state }).from(t.machines).where(eq(t.machines.id, m.id)))[0]!.s === "deployed", 90_000);
    const job = (await db.select().from(t.jobs).where(eq(t.jobs.machineId, m.id)).orderBy(t.jobs.id)).at(-1)!;
    expect(job.state).toBe("succeeded");
    const inv = (await db.select({ inventory: t.machines.inventory }).from(t.machines).where(eq(t.machines.id, m.id)))[0]!.inventory!;
    expect(inv.simulated).toBe(true);
    const lines = await db.select({ text: t.logLines.text }).from(t.logLines).where(eq(t.logLines.jobId, job.id));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => /simulated/.test(l.text)).length).toBeGreaterThan(0);
  }, 120_000);
});
