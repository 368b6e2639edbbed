/**
 * Defects found by an outside probe (issue 10), each reproduced against the whole server over real HTTP and
 * socket.io: login bursts, /metrics label growth, descriptors of aborted /boot/ downloads, sockets that outlive
 * their session or role, and the small ones (empty users.update, over-deep JSON, partial settings, file modes).
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { IpmiSim, SIM_USER } from "../oob/testing/ipmi-sim";
import { testDatabaseEnv, testStoreKind } from "../testing/test-store";

const ADMIN_PASSWORD = "hardening-admin-pw";
let dataDir: string;
let app: App;
let port: number;
let adminCookie: string;
const sockets: Socket[] = [];

/** One HTTP request from a chosen local address (127.0.0.x), on its own connection. */
function request(
  method: string,
  p: string,
  opts: { body?: unknown; cookie?: string; from?: string } = {},
): Promise<{ status: number; body: string; setCookie: string[] }> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: p,
        localAddress: opts.from ?? "127.0.0.1",
        agent: false,
        headers: {
          ...(body !== undefined && { "content-type": "application/json", "content-length": Buffer.byteLength(body) }),
          ...(opts.cookie && { cookie: opts.cookie }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString("utf8"), setCookie: res.headers["set-cookie"] ?? [] }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function login(name: string, password: string, from = "127.0.0.1"): Promise<string> {
  const r = await request("POST", "/api/trpc/auth.login", { body: { name, password }, from });
  expect(r.status, r.body).toBe(200);
  return r.setCookie[0]!.split(";")[0]!;
}

async function trpc(proc: string, input: unknown, cookie = adminCookie) {
  const r = await request("POST", `/api/trpc/${proc}`, { body: input, cookie });
  return { status: r.status, json: JSON.parse(r.body) };
}

async function createUser(name: string, role: string, password: string): Promise<number> {
  const r = await trpc("users.create", { name, role, password });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json.result.data.id;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-hardening-"));
  const config = loadConfig(
    { ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD, RACKHAND_POWER_SYNC: "false" },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  port = Number(new URL(app.url).port);
  adminCookie = await login("admin", ADMIN_PASSWORD);
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("login lockout (defect 1)", () => {
  it("refuses a burst of 60 concurrent logins once the limit is reached, the right password included", async () => {
    await createUser("burst", "operator", "burst-right-password");
    const attempts = Array.from({ length: 60 }, (_, i) =>
      request("POST", "/api/trpc/auth.login", { body: { name: "burst", password: i === 45 ? "burst-right-password" : `wrong-${i}` } }),
    );
    const results = await Promise.all(attempts);
    const by = (s: number) => results.filter((r) => r.status === s).length;
    expect(results[45]!.status).toBe(429);
    expect(by(200)).toBe(0);
    expect(by(401)).toBeLessThanOrEqual(5);
    expect(by(429)).toBeGreaterThanOrEqual(55);
  });

  it("locks the user name for a second source address too", async () => {
    const r = await request("POST", "/api/trpc/auth.login", { body: { name: "burst", password: "burst-right-password" }, from: "127.0.0.2" });
    expect(r.status).toBe(429);
    expect(r.body).toMatch(/Too many failed sign-ins/);
  });

  it("throttles one source trying one password against 30 user names", async () => {
    const results = [];
    for (let i = 0; i < 30; i++) {
      results.push(await request("POST", "/api/trpc/auth.login", { body: { name: `spray${i}`, password: "Summer2026!" }, from: "127.0.0.3" }));
    }
    expect(results.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(10);
    expect(results.at(-1)!.status).toBe(429);
    // Another source is not affected.
    expect((await request("POST", "/api/trpc/auth.login", { body: { name: "admin", password: ADMIN_PASSWORD }, from: "127.0.0.4" })).status).toBe(200);
  });
});

describe("/metrics labels (defect 2)", () => {
  it("thousands of made-up /api/trpc names (404s) keep /metrics small", async () => {
    const before = (await request("GET", "/metrics")).body.length;
    const N = 2000;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => request("GET", `/api/trpc/made.up.name${i + j}?input=%7B%7D`)));
    }
    const after = await request("GET", "/metrics");
    expect(after.body).not.toContain("made.up.name");
    expect(after.body).toContain('route="trpc:unknown"');
    expect(after.body.length - before).toBeLessThan(10_000);
  });
});

describe("/boot/ downloads (defect 3)", () => {
  const fds = () => fs.readdirSync("/proc/self/fd").length;

  it("50 downloads aborted on their first bytes leave no descriptor open", async () => {
    fs.mkdirSync(path.join(dataDir, "http"), { recursive: true });
    fs.writeFileSync(path.join(dataDir, "http", "big.img"), Buffer.alloc(32 << 20, 7));
    // Warm up (lazy handles of the first request), then count.
    await request("HEAD", "/boot/big.img");
    const before = fds();
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: "/boot/big.img", agent: false }, (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.on("error", (e) => ((e as NodeJS.ErrnoException).code === "ECONNRESET" ? resolve() : reject(e)));
      });
    }
    // The server notices the closed connections asynchronously.
    let after = fds();
    for (let i = 0; i < 50 && after - before > 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = fds();
    }
    expect(after - before).toBeLessThanOrEqual(3);
  });
});

describe("small ones (defect 7)", () => {
  it("users.update with only an id is a clear 400, not a 500", async () => {
    const id = await createUser("only-id", "viewer", "only-id-password");
    const r = await trpc("users.update", { id });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/Nothing to change/);
  });

  it("a 40,000-deep JSON inventory is a clear 400", async () => {
    const deep = "[".repeat(40_000) + "]".repeat(40_000);
    const body = `{"macs":["52:54:00:aa:bb:01"],"inventory":{"x":${deep}}}`;
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port, method: "POST", path: "/api/agent/v1/lookup", agent: false, headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.on("data", (c) => (text += c));
          res.on("end", () => resolve({ status: res.statusCode!, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/nested deeper than 64 levels/);
  });

  it("a partial oob.updateSyncSettings keeps the fields it did not send", async () => {
    expect((await trpc("oob.updateSyncSettings", { concurrency: 7, failureThreshold: 9 })).status).toBe(200);
    expect((await trpc("oob.updateSyncSettings", { intervalS: 30 })).status).toBe(200);
    const r = await request("GET", "/api/trpc/oob.syncSettings", { cookie: adminCookie });
    expect(JSON.parse(r.body).result.data).toMatchObject({ intervalS: 30, concurrency: 7, failureThreshold: 9 });
  });

  it("the database, its WAL and SHM are 0600 in a 0700 data directory (on PostgreSQL: no SQLite file at all)", () => {
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const f of ["rackhand.db", "rackhand.db-wal", "rackhand.db-shm"]) {
      if (testStoreKind() === "sqlite") expect((fs.statSync(path.join(dataDir, f)).mode & 0o777).toString(8), f).toBe("600");
      else expect(fs.existsSync(path.join(dataDir, f)), f).toBe(false);
    }
  });
});

describe("sockets follow their session and role (defect 4)", () => {
  let sim: IpmiSim;
  let machineId: number;
  let n = 0;
  beforeAll(async () => {
    sim = await new IpmiSim("hsk", { console: true, power: "on" }).start();
    const r = await trpc("machines.enroll", {
      name: "sock-sol-1",
      bootMac: "52:54:00:5c:01:01",
      bmc: { address: "127.0.0.1", port: sim.port, username: SIM_USER, password: sim.password },
    });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    machineId = r.json.result.data.id;
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  });

  async function connect(cookie: string) {
    const s = connectSocket(app.url, { path: "/socket.io", transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie } });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => (s.on("connect", resolve), s.on("connect_error", reject)));
    const live: unknown[] = [];
    s.on("live", (e) => live.push(e));
    return { s, live };
  }
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function until(what: string, f: () => boolean, ms = 5000) {
    const end = Date.now() + ms;
    while (!f()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await wait(25);
    }
  }

  /** A fleet event that every connected socket would get: an admin enrolls a machine; the admin's socket sees it. */
  async function fleetEvent(watcher: { live: unknown[] }) {
    const before = watcher.live.length;
    const r = await trpc("machines.enroll", { name: `sock-evt-${++n}`, bootMac: `52:54:00:5c:02:${n.toString(16).padStart(2, "0")}` });
    expect(r.status).toBe(200);
    await until("the admin's socket got the event", () => watcher.live.length > before);
  }

  for (const how of ["logout", "disabled", "password change"] as const) {
    it(`after ${how}, the user's open socket gets no more live events`, async () => {
      const name = `sock-${how.replace(" ", "-")}`;
      const id = await createUser(name, "operator", "sock-password-1");
      const cookie = await login(name, "sock-password-1");
      const watcher = await connect(adminCookie);
      const victim = await connect(cookie);
      await fleetEvent(watcher);
      expect(victim.live.length).toBeGreaterThan(0);

      if (how === "logout") expect((await trpc("auth.logout", {}, cookie)).status).toBe(200);
      if (how === "disabled") expect((await trpc("users.update", { id, disabled: true })).status).toBe(200);
      if (how === "password change") expect((await trpc("users.update", { id, password: "sock-password-2" })).status).toBe(200);
      const seen = victim.live.length;
      await fleetEvent(watcher);
      await wait(200);
      expect(victim.live.length).toBe(seen);
      await until("the socket is disconnected", () => !victim.s.connected);
    });
  }

  it("an operator downgraded to viewer on an open socket can no longer take or type on the console", async () => {
    const id = await createUser("sock-downgrade", "operator", "sock-password-1");
    const op = await connect(await login("sock-downgrade", "sock-password-1"));
    const statuses: { holder: string | null }[] = [];
    op.s.on("console:status", (st) => statuses.push(st));
    expect(await op.s.emitWithAck("console:join", { machineId })).toMatchObject({ ok: true, canType: true });
    expect(await op.s.emitWithAck("console:take", { machineId })).toEqual({ ok: true });
    expect(await op.s.emitWithAck("console:input", { machineId, data: "before\r" })).toEqual({ ok: true });

    expect((await trpc("users.update", { id, role: "viewer" })).status).toBe(200);
    // The keyboard it held is released, and take/input are refused on the same socket.
    await until("keyboard released", () => statuses.at(-1)?.holder === null);
    expect(await op.s.emitWithAck("console:input", { machineId, data: "after\r" })).toMatchObject({ ok: false });
    expect(await op.s.emitWithAck("console:take", { machineId })).toMatchObject({ ok: false, error: expect.stringMatching(/operator role/) });
    expect(await op.s.emitWithAck("console:input", { machineId, data: "after\r" })).toMatchObject({ ok: false });
    // Still a signed-in viewer: the socket stays and watches.
    expect(op.s.connected).toBe(true);
    await op.s.emitWithAck("console:leave", { machineId });
  });
});
