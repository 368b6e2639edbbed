/** GET /api/machines.csv over real HTTP: who may download, the filter it applies, refusals of bad filters. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Papa from "papaparse";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { machineInput } from "../testing/fixtures";
import { testDatabaseEnv } from "../testing/test-store";

const ADMIN_PASSWORD = "csv-export-admin-pw";
let dataDir: string;
let app: App;
let cookie: string;

async function trpc(proc: string, input: unknown, headers: Record<string, string> = { cookie }) {
  const r = await fetch(`${app.url}/api/trpc/${proc}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(input) });
  const json = (await r.json()) as { result?: { data: unknown }; error?: unknown };
  if (r.status !== 200) throw new Error(`${proc}: ${r.status} ${JSON.stringify(json)}`);
  return { json: json.result!.data as Record<string, unknown>, res: r };
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-csv-"));
  const config = loadConfig(
    { ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD, RACKHAND_POWER_SYNC: "false" },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  const r = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "admin", password: ADMIN_PASSWORD }) });
  cookie = r.headers.getSetCookie()[0]!.split(";")[0]!;
  for (let i = 1; i <= 1200; i++) await trpc("machines.enroll", machineInput(i));
  await trpc("machines.action", { id: 1, action: "manage" });
}, 120_000);

afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("GET /api/machines.csv", () => {
  it("refuses without a session or token, and with a bad session", async () => {
    expect((await fetch(`${app.url}/api/machines.csv`)).status).toBe(401);
    expect((await fetch(`${app.url}/api/machines.csv`, { headers: { cookie: "rh_session=forged" } })).status).toBe(401);
    expect((await fetch(`${app.url}/api/machines.csv`, { headers: { authorization: "Bearer rh_nope" } })).status).toBe(401);
  });

  it("streams every machine (more than one chunk) as an attachment, in the asked order", async () => {
    const r = await fetch(`${app.url}/api/machines.csv?sort=name&dir=desc`, { headers: { cookie } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(r.headers.get("content-disposition")).toMatch(/^attachment; filename="machines-[0-9T-]+\.csv"$/);
    const rows = Papa.parse<Record<string, string>>(await r.text(), { header: true, skipEmptyLines: true }).data;
    expect(rows).toHaveLength(1200);
    expect(rows[0]!.name).toBe("node-999"); // names sort as text
    expect(new Set(rows.map((x) => x.name)).size).toBe(1200);
  });

  it("applies the page's filter keys, and an API token works too", async () => {
    const { json } = await trpc("tokens.create", { name: "csv", scope: "read", expiresInDays: 1 });
    const r = await fetch(`${app.url}/api/machines.csv?state=manageable&q=node-00`, { headers: { authorization: `Bearer ${json.token as string}` } });
    expect(r.status).toBe(200);
    const rows = Papa.parse<Record<string, string>>(await r.text(), { header: true, skipEmptyLines: true }).data;
    expect(rows.map((x) => [x.name, x.state])).toEqual([["node-001", "manageable"]]);
  });

  it.each([
    ["state=bogus", /states/],
    ["disks=-1", /minDisks/],
    ["mem=abc", /minMemoryGiB/],
    ["sort=%3Bdrop", /sort/],
    [`cpu=${"x".repeat(101)}`, /cpuModel/],
    [`q=${encodeURIComponent("a\nb")}${"z".repeat(120)}`, /q/],
  ])("refuses a bad filter %s with 400 and says which key", async (qs, want) => {
    const r = await fetch(`${app.url}/api/machines.csv?${qs}`, { headers: { cookie } });
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(want);
  });

  it("hostile search text is a literal search, not an error", async () => {
    for (const q of ["' OR 1=1 --", "$(reboot)", "..\\..", "%_", "ü\0"]) {
      const r = await fetch(`${app.url}/api/machines.csv?q=${encodeURIComponent(q)}`, { headers: { cookie } });
      expect(r.status, q).toBe(200);
      expect((await r.text()).trim().split("\r\n")).toHaveLength(1);
    }
  });
});
