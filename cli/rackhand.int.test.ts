/**
 * The `rackhand` CLI as a real child process (bin/rackhand.mjs) against a real server, authenticated only by an
 * API token (no cookie): list and filter, enroll from CSV, act with the plan first, follow a job's log live.
 */
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../server/app";
import { loadConfig } from "../server/config";
import { jobs, logLines } from "../server/db/schema";
import { silentLogger } from "../server/log";
import { transition } from "../server/machines/lifecycle";

const BIN = path.resolve(__dirname, "../bin/rackhand.mjs");
let dataDir: string;
let app: App;
let token: string;
let readToken: string;

function run(args: string[], opts: { token?: string; stdin?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env: { NODE_ENV: "test", PATH: process.env.PATH, HOME: process.env.HOME, RACKHAND_URL: app.url, RACKHAND_TOKEN: opts.token ?? token }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(opts.stdin ?? "");
  });
}

async function post(proc: string, input: unknown, headers: Record<string, string>) {
  const res = await fetch(`${app.url}/api/trpc/${proc}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(input) });
  return (await res.json());
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-cli-"));
  const config = loadConfig({ NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "cli-admin-pw" }, { ui: false });
  app = await startApp(config, silentLogger);
  const res = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "admin", password: "cli-admin-pw" }) });
  const cookie = res.headers.getSetCookie()[0]!.split(";")[0]!;
  token = (await post("tokens.create", { name: "cli", scope: "role", expiresInDays: 1 }, { cookie })).result.data.token;
  readToken = (await post("tokens.create", { name: "cli-ro", scope: "read", expiresInDays: 1 }, { cookie })).result.data.token;
}, 60_000);

afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// Each CLI run is a Node start with tsx's loader (~0.8 s): a test of several runs takes ~10 s on an idle 2-core host,
// half the default timeout, so a loaded CI host gets three times the room.
describe("rackhand CLI with a token", { timeout: 60_000 }, () => {
  it("whoami; refuses a bad token and a missing URL", async () => {
    expect(await run(["whoami", "--json"])).toMatchObject({ code: 0 });
    expect(JSON.parse((await run(["whoami", "--json"])).stdout)).toMatchObject({ name: "admin", role: "admin" });
    const bad = await run(["whoami", "--json"], { token: "rh_bogus" });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stderr)).toMatchObject({ status: 401 });
    const usage = await run(["machines", "frobnicate"]);
    expect(usage.code).toBe(2);
  });

  it("enrolls from CSV (dry run writes nothing), then lists and filters", async () => {
    const csv = path.join(dataDir, "fleet.csv");
    fs.writeFileSync(csv, "name,mac,ip\ncli-a,52:54:00:c1:00:01,10.77.0.1\ncli-b,52:54:00:c1:00:02,10.77.0.2\ncli-c,52:54:00:c1:00:03,10.77.0.3\n");
    const dry = await run(["machines", "enroll", "--csv", csv, "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ ok: true, dryRun: true });
    expect(JSON.parse((await run(["machines", "list", "--json"])).stdout).total).toBe(0);
    const real = await run(["machines", "enroll", "--csv", csv]);
    expect(real).toMatchObject({ code: 0 });
    expect(real.stdout).toContain("Enrolled 3 machine(s)");
    // A broken CSV: refused, nothing written.
    fs.writeFileSync(csv, "name,mac\ncli-d,not-a-mac\n");
    const broken = await run(["machines", "enroll", "--csv", csv, "--json"]);
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stderr)).toMatchObject({ status: 400, code: "CSV_INVALID" });
    expect(JSON.parse(broken.stderr).details.length).toBeGreaterThan(0);

    const all = JSON.parse((await run(["machines", "list", "--json"])).stdout);
    expect(all.rows.map((m: { name: string }) => m.name).sort()).toEqual(["cli-a", "cli-b", "cli-c"]);
    const one = JSON.parse((await run(["machines", "list", "--q", "cli-b", "--json"])).stdout);
    expect(one.rows.map((m: { name: string }) => m.name)).toEqual(["cli-b"]);
    const text = await run(["machines", "list", "--state", "enrolled"]);
    expect(text.stdout).toMatch(/^ID\s+NAME\s+STATE/);
    expect(text.stdout).toContain("3 of 3 machines");
    expect((await run(["machines", "list", "--state", "nonsense"])).code).toBe(2);
  });

  it("act shows the plan (act and skip) first; without --yes and no terminal it refuses; --yes acts", async () => {
    const list = JSON.parse((await run(["machines", "list", "--json"])).stdout).rows as { id: number; name: string }[];
    const id = (n: string) => list.find((m) => m.name === n)!.id;
    await post("machines.setMaintenance", { id: id("cli-c"), on: true, reason: "cli test" }, { authorization: `Bearer ${token}` });

    const noTty = await run(["machines", "act", "manage", "--ids", `${id("cli-a")},${id("cli-c")}`]);
    expect(noTty.code).toBe(2);
    expect(noTty.stdout).toMatch(/Plan: manage on 1 machine\(s\), 1 skipped/);
    expect(noTty.stdout).toMatch(/act\s+\d+\s+cli-a/);
    expect(noTty.stdout).toMatch(/skip\s+\d+\s+cli-c\s+in maintenance/);
    expect(JSON.parse((await run(["machines", "list", "--q", "cli-a", "--json"])).stdout).rows[0].state).toBe("enrolled");

    // A read-only token may plan (it writes nothing) but not act: the plan is made, the action is refused, nothing changes.
    const ro = await run(["machines", "act", "manage", "--ids", String(id("cli-a")), "--yes", "--json"], { token: readToken });
    expect(ro.code, ro.stderr).toBe(1);
    expect(JSON.parse(ro.stderr)).toMatchObject({ status: 403 });
    expect(JSON.parse((await run(["machines", "list", "--q", "cli-a", "--json"])).stdout).rows[0].state).toBe("enrolled");

    const yes = await run(["machines", "act", "manage", "--ids", `${id("cli-a")},${id("cli-c")}`, "--yes", "--json"]);
    expect(yes.code).toBe(0);
    const out = JSON.parse(yes.stdout);
    expect(out.plan.act.map((m: { name: string }) => m.name)).toEqual(["cli-a"]);
    expect(out.plan.skip).toMatchObject([{ name: "cli-c", reason: "in maintenance" }]);
    expect(out.results).toMatchObject([{ name: "cli-a", ok: true, state: "manageable" }]);
    // A filter selection: manage what is still enrolled (cli-b); cli-a is now manageable and not matched.
    const byFilter = JSON.parse((await run(["machines", "act", "manage", "--state", "enrolled", "--maintenance", "no", "--yes", "--json"])).stdout);
    expect(byFilter.results).toMatchObject([{ name: "cli-b", ok: true }]);
    // Never the whole fleet by accident.
    expect((await run(["machines", "act", "manage", "--yes"])).code).toBe(2);
  });

  it("follows a job's log live over socket.io with the token, until the job ends", async () => {
    const list = JSON.parse((await run(["machines", "list", "--q", "cli-b", "--json"])).stdout).rows as { id: number }[];
    const machineId = list[0]!.id;
    // A queued job (no batch slot, so the orchestrator leaves it alone) whose lines the test writes like the agent API.
    await transition(app.domain, machineId, "inspect", { actor: "test" });
    const jobId = app.domain.db
      .insert(jobs)
      .values({ machineId, kind: "inspect", state: "queued", params: {}, createdBy: "test", createdAt: new Date() })
      .returning({ id: jobs.id })
      .get().id;
    const write = (seqs: number[]) => {
      const lines = seqs.map((seq) => ({ jobId, seq, ts: new Date(1_700_000_000_000 + seq), stream: "stdout", text: `line ${seq}` }));
      app.domain.db.insert(logLines).values(lines).run();
      app.domain.bus.publish({ type: "log.lines", jobId, machineId, lines: lines.map((l) => ({ seq: l.seq, ts: l.ts.getTime(), stream: l.stream, text: l.text, stepId: null })) });
    };
    write([0, 1, 2]);
    const child = spawn(process.execPath, [BIN, "jobs", "follow", String(jobId), "--json"], {
      env: { NODE_ENV: "test", PATH: process.env.PATH, RACKHAND_URL: app.url, RACKHAND_TOKEN: token },
    });
    let stdout = "";
    child.stdout.on("data", (b) => (stdout += b));
    const exited = new Promise<number>((r) => child.on("exit", (c) => r(c ?? -1)));
    const until = async (re: RegExp) => {
      const t0 = Date.now();
      while (!re.test(stdout)) {
        if (Date.now() - t0 > 20_000) throw new Error(`timed out waiting for ${re}; got ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(/line 2/);
    // Live: these lines exist only after the backfill, and the job is still running, so the socket delivered them.
    write([3, 4]);
    await until(/line 4/);
    const cancel = await post("jobs.cancel", { jobId }, { authorization: `Bearer ${token}` });
    expect(cancel.result.data).toEqual({ ok: true });
    expect(await exited).toBe(3);
    const objs = stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(objs.filter((o) => "seq" in o).map((o) => o.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(objs.at(-1)).toEqual({ job: { id: jobId, state: "cancelled" } });
  });
});
