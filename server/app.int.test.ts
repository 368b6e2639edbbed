/** HTTP level: the whole server as started in production (minus the Next.js UI), spoken to over real sockets. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import Database from "better-sqlite3";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LiveEvent } from "../lib/live-events";
import { startApp, type App } from "./app";
import { loadConfig } from "./config";
import { silentLogger } from "./log";
import { until } from "./testing/until";
import { testDatabaseEnv, testStoreKind } from "./testing/test-store";

const ADMIN_PASSWORD = "int-test-admin-pw";
let dataDir: string;
let app: App;
let cookie: string;
const sockets: Socket[] = [];

async function login(): Promise<string> {
  const res = await fetch(`${app.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "admin", password: ADMIN_PASSWORD }),
  });
  expect(res.status).toBe(200);
  const setCookie = res.headers.getSetCookie();
  expect(setCookie).toHaveLength(1);
  return setCookie[0]!;
}

function trpcPost(proc: string, input: unknown, headers: Record<string, string> = {}) {
  return fetch(`${app.url}/api/trpc/${proc}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(input),
  });
}

function trpcGet(proc: string, input: unknown, headers: Record<string, string> = {}) {
  const q = input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
  return fetch(`${app.url}/api/trpc/${proc}${q}`, { headers });
}

function socket(headers: Record<string, string> = {}): Socket {
  const s = connectSocket(app.url, {
    path: "/socket.io",
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    extraHeaders: headers,
  });
  sockets.push(s);
  return s;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-int-"));
  const config = loadConfig(
    {
      ...(await testDatabaseEnv()), NODE_ENV: "test",
      RACKHAND_DATA_DIR: dataDir,
      PORT: "0",
      RACKHAND_HOST: "127.0.0.1",
      RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD,
    },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  cookie = (await login()).split(";")[0]!;
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("plain HTTP endpoints", () => {
  it("listens on an ephemeral port on the configured host", () => {
    expect(app.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(app.url).not.toMatch(/:0$/);
  });

  it("keeps an idle kept-alive connection open past 5 s (clients and proxies reuse them for up to 60 s)", async () => {
    expect(app.server.keepAliveTimeout).toBeGreaterThan(60_000);
    const { port } = new URL(app.url);
    const sock = net.connect(Number(port), "127.0.0.1");
    let got = "";
    let closed = false;
    sock.on("data", (c: Buffer) => (got += c.toString()));
    sock.on("close", () => (closed = true));
    const ask = async () => {
      const before = got.length;
      sock.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
      await until("an answer on the kept-alive connection", () => (/HTTP\/1\.1 200/.test(got.slice(before)) && got.slice(before).includes('"status":"ok"')) || closed, 5_000);
      return got.slice(before);
    };
    try {
      expect(await ask()).toMatch(/^HTTP\/1\.1 200/);
      await new Promise((r) => setTimeout(r, 6_000)); // longer than Node's default keepAliveTimeout (5 s)
      expect(closed).toBe(false);
      expect(await ask()).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      sock.destroy();
    }
  }, 20_000);

  it("/healthz answers 200 JSON", async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = await res.json();
    // On PostgreSQL the process names its roles among processes sharing the database (server/http/health.ts).
    if (testStoreKind() === "sqlite") expect(body).toMatchObject({ status: "ok", store: "sqlite", roles: ["all (single process)"] });
    else expect(body).toMatchObject({ status: "ok", store: "postgres", roles: expect.arrayContaining(["api", "orchestrator"]) });
    expect(body.process).toMatch(/^[A-Za-z0-9._-]+:\d+$/);
    expect(typeof body.uptimeS).toBe("number");
  });

  it("/metrics is Prometheus text with machine gauges and process metrics", async () => {
    const enrolled = await trpcPost(
      "machines.enroll",
      { name: "metrics-1", bootMac: "52:54:00:00:77:01" },
      { cookie },
    );
    expect(enrolled.status).toBe(200);
    const res = await fetch(`${app.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain("# TYPE rackhand_machines gauge");
    expect(text).toMatch(/^rackhand_machines\{[^}]*state="enrolled"[^}]*\} [1-9]\d*$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total(\{[^}]*\})? \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes(\{[^}]*\})? \d/m);
    expect(text).toContain("rackhand_http_request_duration_seconds_bucket");
  });

  it("answers 404 for pages when the UI is disabled", async () => {
    const res = await fetch(`${app.url}/machines`);
    expect(res.status).toBe(404);
  });
});

describe("tRPC over HTTP", () => {
  it("login sets an HttpOnly, SameSite=Lax session cookie", async () => {
    const set = await login();
    expect(set).toMatch(/^rh_session=[^;]{20,};/);
    expect(set).toMatch(/;\s*HttpOnly/i);
    expect(set).toMatch(/;\s*SameSite=Lax/i);
    expect(set).toMatch(/;\s*Path=\//);
  });

  it("a wrong password is 401 and sets no cookie", async () => {
    const res = await trpcPost("auth.login", { name: "admin", password: "wrong-password-x" });
    expect(res.status).toBe(401);
    expect(res.headers.getSetCookie()).toEqual([]);
    const body = await res.json();
    expect(body.error.message).toBe("Wrong user name or password");
  });

  it("a query without a cookie is 401; with it, 200", async () => {
    const anon = await trpcGet("racks.list", undefined);
    expect(anon.status).toBe(401);
    expect((await anon.json()).error.data.code).toBe("UNAUTHORIZED");
    const authed = await trpcGet("racks.list", undefined, { cookie });
    expect(authed.status).toBe(200);
    expect((await authed.json()).result.data).toEqual(expect.any(Array));
    const bogus = await trpcGet("racks.list", undefined, { cookie: "rh_session=forged-token" });
    expect(bogus.status).toBe(401);
  });

  it("refuses a POST with a foreign Origin (403) and nothing is written", async () => {
    const res = await trpcPost("racks.create", { name: "csrf-rack" }, { cookie, origin: "https://evil.example" });
    expect(res.status).toBe(403);
    const list = await (await trpcGet("racks.list", undefined, { cookie })).json();
    expect(list.result.data.map((r: { name: string }) => r.name)).not.toContain("csrf-rack");
  });

  it("refuses a POST with an unparsable Origin, accepts one with its own origin", async () => {
    expect((await trpcPost("racks.create", { name: "null-origin" }, { cookie, origin: "null" })).status).toBe(403);
    const ok = await trpcPost("racks.create", { name: "same-origin" }, { cookie, origin: app.url });
    expect(ok.status).toBe(200);
  });

  it("formats errors for the browser: status, app code, field details, no stack", async () => {
    const bad = await trpcPost("machines.enroll", { name: "x", bootMac: "nope" }, { cookie });
    expect(bad.status).toBe(400);
    const badBody = await bad.json();
    expect(badBody.error.message).toMatch(/^bootMac: /);
    expect(badBody.error.data).toMatchObject({ appCode: "VALIDATION", details: [expect.objectContaining({ field: "bootMac" })] });
    expect(badBody.error.data.stack).toBeUndefined();

    const m = await (await trpcPost("machines.enroll", { name: "http-1", bootMac: "52:54:00:00:77:02" }, { cookie })).json();
    const illegal = await trpcPost("machines.action", { id: m.result.data.id, action: "deploy" }, { cookie });
    expect(illegal.status).toBe(409);
    expect((await illegal.json()).error.data.appCode).toBe("INVALID_TRANSITION");
  });

  it("stores the database in WAL mode (on PostgreSQL: there is no SQLite file)", () => {
    const file = path.join(dataDir, "rackhand.db");
    if (testStoreKind() === "postgres") {
      expect(fs.existsSync(file)).toBe(false);
      expect(() => app.domain.db.$client).toThrow(/cannot run on PostgreSQL/);
      return;
    }
    expect(app.domain.db.$client.pragma("journal_mode", { simple: true })).toBe("wal");
    // WAL is a property of the file: a separate connection sees it too.
    const other = new Database(file, { readonly: true });
    try {
      expect(other.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      other.close();
    }
  });

  it("created the secret key file 0600 in the data directory", () => {
    expect(fs.statSync(path.join(dataDir, "secret.key")).mode & 0o777).toBe(0o600);
  });
});

describe("socket.io live events", () => {
  it("refuses a connection without a session cookie", async () => {
    const s = socket();
    const err = await new Promise<Error>((resolve, reject) => {
      s.on("connect_error", resolve);
      s.on("connect", () => reject(new Error("connected without a session")));
    });
    expect(err.message).toBe("UNAUTHENTICATED");
    expect(s.connected).toBe(false);
  });

  it("refuses a forged session cookie", async () => {
    const s = socket({ cookie: "rh_session=forged" });
    const err = await new Promise<Error>((resolve, reject) => {
      s.on("connect_error", resolve);
      s.on("connect", () => reject(new Error("connected with a forged session")));
    });
    expect(err.message).toBe("UNAUTHENTICATED");
  });

  it("with a session, receives machine.changed when another request enrolls a machine", async () => {
    const s = socket({ cookie });
    await new Promise<void>((resolve, reject) => {
      s.on("connect", resolve);
      s.on("connect_error", reject);
    });
    const received = new Promise<LiveEvent>((resolve) => {
      s.on("live", (e: LiveEvent) => {
        if (e.type === "machine.changed" && e.name === "live-1") resolve(e);
      });
    });
    const res = await trpcPost("machines.enroll", { name: "live-1", bootMac: "52:54:00:00:77:03" }, { cookie });
    expect(res.status).toBe(200);
    const id = (await res.json()).result.data.id;
    const e = await received;
    expect(e).toMatchObject({ type: "machine.changed", machineId: id, name: "live-1", state: "enrolled", maintenance: false });
  });

  it("subscribes to a machine room and gets its state changes", async () => {
    const s = socket({ cookie });
    await new Promise<void>((resolve, reject) => {
      s.on("connect", resolve);
      s.on("connect_error", reject);
    });
    const m = await (await trpcPost("machines.enroll", { name: "live-2", bootMac: "52:54:00:00:77:04" }, { cookie })).json();
    const id: number = m.result.data.id;
    const ack = await s.emitWithAck("subscribe", { machineId: id });
    expect(ack).toEqual({ ok: true });
    expect(await s.emitWithAck("subscribe", { machineId: "x" })).toMatchObject({ ok: false });
    const changed = new Promise<LiveEvent>((resolve) => {
      s.on("live", (e: LiveEvent) => {
        if (e.type === "machine.changed" && e.machineId === id && e.state === "manageable") resolve(e);
      });
    });
    expect((await trpcPost("machines.action", { id, action: "manage" }, { cookie })).status).toBe(200);
    expect(await changed).toMatchObject({ state: "manageable" });
  });
});
