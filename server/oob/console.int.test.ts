/**
 * Serial console end to end: the real server (no UI), socket.io clients, ipmi_sim with SOL wired to a fake
 * serial console on TCP. One `ipmitool sol activate` shared by all viewers; keyboard held by one operator.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { testDatabaseEnv } from "../testing/test-store";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { alive, IpmiSim, SIM_USER } from "./testing/ipmi-sim";
import { Transcript, transcriptFiles } from "./console/transcript";

const ADMIN_PASSWORD = "console-admin-pw";
let dataDir: string;
let app: App;
let sim: IpmiSim;
let machineId: number;
const cookies: Record<string, string> = {};
const sockets: Socket[] = [];

async function login(name: string, password: string) {
  const res = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name, password }) });
  expect(res.status).toBe(200);
  return res.headers.getSetCookie()[0]!.split(";")[0]!;
}
async function trpc(proc: string, input: unknown, cookie = cookies.admin!) {
  const res = await fetch(`${app.url}/api/trpc/${proc}`, { method: "POST", headers: { "content-type": "application/json", cookie }, body: JSON.stringify(input) });
  const body = await res.json();
  if (res.status !== 200) throw new Error(JSON.stringify(body));
  return body.result.data;
}
async function client(cookie: string) {
  const s = connectSocket(app.url, { path: "/socket.io", transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie } });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => (s.on("connect", resolve), s.on("connect_error", reject)));
  let text = "";
  s.on("console:data", (m: { data: ArrayBuffer | Buffer }) => (text += Buffer.from(m.data as ArrayBuffer).toString("latin1")));
  return { s, text: () => text, add: (t: string) => (text += t) };
}
async function until(what: string, fn: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  sim = await new IpmiSim("sol", { console: true, power: "on" }).start();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-console-"));
  const config = loadConfig(
    { NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD, RACKHAND_POWER_SYNC: "false", ...(await testDatabaseEnv()) },
    { ui: false },
  );
  config.oob = { ...config.oob, consoleGraceMs: 300, callTimeoutMs: 5000 };
  app = await startApp(config, silentLogger);
  cookies.admin = await login("admin", ADMIN_PASSWORD);
  await trpc("users.create", { name: "vera", role: "viewer", password: "vera-password-1" });
  cookies.viewer = await login("vera", "vera-password-1");
  machineId = (await trpc("machines.enroll", { name: "sol-1", bootMac: "52:54:00:50:01:01", bmc: { address: "127.0.0.1", port: sim.port, username: SIM_USER, password: sim.password } })).id;
}, 30_000);
afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app?.close();
  await sim?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("serial console over socket.io", () => {
  it("takes over a stale SOL session, shares one ipmitool between viewers, one keyboard at a time, closes after the grace period", async () => {
    // Someone else holds the SOL payload: Rackhand deactivates it and retries once.
    const stale = spawn("ipmitool", ["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", String(sim.port), "-U", SIM_USER, "-E", "sol", "activate"], {
      env: { ...process.env, IPMI_PASSWORD: sim.password },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let staleOut = "";
    stale.stdout.on("data", (b) => (staleOut += b));
    await until("stale SOL session", () => staleOut.includes("SOL Session operational"));

    const a = await client(cookies.admin!);
    const joinA = await a.s.emitWithAck("console:join", { machineId });
    expect(joinA).toMatchObject({ ok: true, status: { state: "open", viewers: 1, holder: null }, canType: true });
    await until("console output", () => a.text().includes("console-line"));
    // The stale session lost its payload; it may linger as a process (it is not ours to keep).
    const staleGone = new Promise((r) => stale.once("exit", r));
    stale.kill("SIGKILL");
    await staleGone;

    // Exactly one ipmitool for this console, without the password in its command line.
    const kids = sim.solChildren();
    expect(kids).toHaveLength(1);
    expect(kids[0]!.cmd).not.toContain(sim.password);
    expect(kids[0]!.cmd.split("\0")).not.toContain("-P");

    const v = await client(cookies.viewer!);
    const joinV = await v.s.emitWithAck("console:join", { machineId });
    expect(joinV).toMatchObject({ ok: true, status: { viewers: 2 }, canType: false });
    v.add(Buffer.from(joinV.recent as ArrayBuffer).toString("latin1"));
    expect(sim.solChildren()).toHaveLength(1);

    // Viewers watch but cannot type or take the keyboard; an operator without the keyboard cannot type either.
    expect(await v.s.emitWithAck("console:take", { machineId })).toMatchObject({ ok: false, error: expect.stringMatching(/operator role/) });
    expect(await v.s.emitWithAck("console:input", { machineId, data: "x\r" })).toMatchObject({ ok: false });
    expect(await a.s.emitWithAck("console:input", { machineId, data: "x\r" })).toMatchObject({ ok: false, error: "Take the keyboard first" });

    const statuses: unknown[] = [];
    v.s.on("console:status", (st) => statuses.push(st));
    expect(await a.s.emitWithAck("console:take", { machineId })).toEqual({ ok: true });
    await until("holder shown to the viewer", () => statuses.some((st) => (st as { holder: string }).holder === "admin"));
    expect(await a.s.emitWithAck("console:input", { machineId, data: "hello-sol\r" })).toEqual({ ok: true });
    await until("echo at the operator", () => a.text().includes("ECHO:hello-sol"));
    await until("echo at the viewer", () => v.text().includes("ECHO:hello-sol"));
    expect(await a.s.emitWithAck("console:release", { machineId })).toEqual({ ok: true });
    await until("keyboard released", () => (statuses.at(-1) as { holder: string | null }).holder === null);

    // Leaving: the console stays for the grace period, then the ipmitool child ends.
    const pid = kids[0]!.pid;
    await a.s.emitWithAck("console:leave", { machineId });
    v.s.disconnect();
    expect(app.consoles.isOpen(machineId)).toBe(true);
    await until("console closed after grace", () => !app.consoles.isOpen(machineId) && !alive(pid), 5000);

    // The transcript survives the tabs: viewable and downloadable, for signed-in users only.
    const t = await fetch(`${app.url}/api/consoles/${machineId}/transcript`, { headers: { cookie: cookies.viewer! } });
    expect(t.status).toBe(200);
    const body = await t.text();
    expect(body).toContain("console-line");
    expect(body).toContain("ECHO:hello-sol");
    expect(body).toMatch(/--- console closed .*: (no viewers|session ended) ---/);
    const dl = await fetch(`${app.url}/api/consoles/${machineId}/transcript?download=1`, { headers: { cookie: cookies.viewer! } });
    expect(dl.headers.get("content-disposition")).toBe('attachment; filename="sol-1-console.log"');
    expect((await fetch(`${app.url}/api/consoles/${machineId}/transcript`)).status).toBe(401);
    expect((await fetch(`${app.url}/api/consoles/999999/transcript`, { headers: { cookie: cookies.viewer! } })).status).toBe(404);
  }, 30_000);

  it("opens on a console that prints nothing (a machine that is off), and passes typed keys", async () => {
    const quiet = await new IpmiSim("solq", { console: "quiet", power: "off" }).start();
    try {
      const id = (await trpc("machines.enroll", { name: "sol-quiet", bootMac: "52:54:00:50:01:12", bmc: { address: "127.0.0.1", port: quiet.port, username: SIM_USER, password: quiet.password } })).id;
      const c = await client(cookies.admin!);
      const ack = await c.s.emitWithAck("console:join", { machineId: id });
      // ipmitool's "[SOL Session operational]" must not wait in its stdout buffer for console output.
      expect(ack).toMatchObject({ ok: true, status: { state: "open" } });
      expect(await c.s.emitWithAck("console:take", { machineId: id })).toEqual({ ok: true });
      expect(await c.s.emitWithAck("console:input", { machineId: id, data: "ping-quiet\r" })).toEqual({ ok: true });
      await until("the echo", () => c.text().includes("ECHO:ping-quiet"));
      await c.s.emitWithAck("console:leave", { machineId: id });
    } finally {
      await quiet.stop();
    }
  });

  it("a machine without a BMC has no console", async () => {
    const bare = (await trpc("machines.enroll", { name: "no-sol", bootMac: "52:54:00:50:01:02" })).id;
    const c = await client(cookies.admin!);
    expect(await c.s.emitWithAck("console:join", { machineId: bare })).toMatchObject({ ok: false, error: "no-sol has no BMC configured" });
  });
});

describe("transcripts", () => {
  it("rotate at the size cap and keep a bounded number of old files", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-transcript-"));
    try {
      const t = new Transcript(dir, 7, 100, 2);
      for (let i = 0; i < 10; i++) t.append(`line ${i} ${"x".repeat(40)}\n`);
      const files = transcriptFiles(dir, 7);
      expect(files.map((f) => path.basename(f))).toEqual(["7.log.2", "7.log.1", "7.log"]);
      for (const f of files) expect(fs.statSync(f).size).toBeLessThanOrEqual(100);
      expect(fs.readFileSync(files.at(-1)!, "utf8")).toContain("line 9");
      // Each kept file has its arrival index beside it (transcript.ts); nothing else is left behind.
      expect(fs.readdirSync(dir).sort()).toEqual(["7.log", "7.log.1", "7.log.1.idx", "7.log.2", "7.log.2.idx", "7.log.idx"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
