/** API tokens over real HTTP and a real socket.io client: Bearer on /api/trpc and at the socket handshake, no cookie. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { testDatabaseEnv, testStoreKind } from "../testing/test-store";
import { pgPoolOf } from "../db/store";

const ADMIN_PASSWORD = "tokens-int-admin-pw";
let dataDir: string;
let app: App;
const sockets: Socket[] = [];

async function call(proc: string, input: unknown, headers: Record<string, string>, method: "GET" | "POST" = "POST") {
  const url = `${app.url}/api/trpc/${proc}` + (method === "GET" && input !== undefined ? `?input=${encodeURIComponent(JSON.stringify(input))}` : "");
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(method === "POST" && { body: JSON.stringify(input ?? null) }),
  });
  const body = await res.json().catch(() => null);
  return { status: res.status, body, data: body?.result?.data };
}

async function loginCookie(name: string, password: string): Promise<string> {
  const res = await fetch(`${app.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, password }),
  });
  expect(res.status).toBe(200);
  return res.headers.getSetCookie()[0]!.split(";")[0]!;
}

function connect(opts: { auth?: Record<string, unknown>; headers?: Record<string, string> }): Promise<Socket> {
  const s = connectSocket(app.url, {
    path: "/socket.io",
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    auth: opts.auth,
    extraHeaders: opts.headers,
  });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => reject(e));
  });
}

let admin: string;
let operatorCookie: string;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-tokens-"));
  const config = loadConfig(
    { ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  admin = await loginCookie("admin", ADMIN_PASSWORD);
  expect((await call("users.create", { name: "ops", role: "operator", password: "ops-password-1" }, { cookie: admin })).status).toBe(200);
  operatorCookie = await loginCookie("ops", "ops-password-1");
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function newToken(cookie: string, scope: "read" | "role", name = `t-${scope}`) {
  const r = await call("tokens.create", { name, scope, expiresInDays: 30 }, { cookie });
  expect(r.status).toBe(200);
  return r.data as { token: string; info: { id: number; prefix: string } };
}

/** Everything the database holds, as text: SQLite's file and WAL, or every PostgreSQL table's rows. */
async function databaseText(): Promise<string> {
  if (testStoreKind() === "sqlite") return ["rackhand.db", "rackhand.db-wal"].map((f) => fs.readFileSync(path.join(dataDir, f)).toString("latin1")).join("");
  const pool = pgPoolOf(app.domain.store);
  const tables = (await pool.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.t);
  expect(tables).toContain("api_tokens");
  const parts = await Promise.all(tables.map(async (t) => (await pool.query<{ r: string }>(`SELECT r::text AS r FROM "${t}" r`)).rows.map((x) => x.r).join("\n")));
  return parts.join("\n");
}

describe("API tokens over HTTP", () => {
  it("shows the secret once and stores only its hash", async () => {
    const { token, info } = await newToken(operatorCookie, "role");
    expect(token).toMatch(/^rh_[A-Za-z0-9_-]{43}$/);
    const row = (await app.domain.store.db.select().from(app.domain.store.t.apiTokens).where(eq(app.domain.store.t.apiTokens.id, info.id)))[0]!;
    expect(row.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.tokenHash).not.toContain(token);
    expect(await databaseText()).not.toContain(token.slice(3));
    const list = await call("tokens.list", undefined, { cookie: operatorCookie }, "GET");
    expect(JSON.stringify(list.body)).not.toContain(token.slice(10));
    expect(list.data.map((t: { id: number }) => t.id)).toContain(info.id);
  });

  it("a role token acts with its owner's role, without a cookie, and records its last use", async () => {
    const { token, info } = await newToken(operatorCookie, "role", "ci");
    const auth = { authorization: `Bearer ${token}` };
    expect((await call("auth.me", undefined, auth, "GET")).data).toMatchObject({ name: "ops", role: "operator" });
    const rack = await call("racks.create", { name: "tok-rack" }, auth);
    expect(rack.status).toBe(200);
    // Operator token: admin procedures are refused exactly as for an operator session.
    expect((await call("users.list", undefined, auth, "GET")).status).toBe(403);
    const row = (await app.domain.store.db.select().from(app.domain.store.t.apiTokens).where(eq(app.domain.store.t.apiTokens.id, info.id)))[0]!;
    expect(row.lastUsedAt).not.toBeNull();
    // A token cannot mint tokens.
    expect((await call("tokens.create", { name: "x", scope: "role", expiresInDays: 1 }, auth)).status).toBe(403);
  });

  it("a read-only token reads but can never mutate, even for an admin", async () => {
    const { token } = await newToken(admin, "read");
    const auth = { authorization: `Bearer ${token}` };
    expect((await call("users.list", undefined, auth, "GET")).status).toBe(200);
    const before = (await call("racks.list", undefined, auth, "GET")).data.length;
    const r = await call("racks.create", { name: "ro-rack" }, auth);
    expect(r.status).toBe(403);
    expect(r.body.error.message).toMatch(/read-only/);
    expect((await call("users.create", { name: "ro-user", role: "viewer", password: "ro-password-1" }, auth)).status).toBe(403);
    expect((await call("racks.list", undefined, auth, "GET")).data.length).toBe(before);
  });

  it("refuses expired, revoked, unknown and malformed tokens, and a disabled owner's", async () => {
    const bad = async (t: string) => (await call("machines.summary", undefined, { authorization: `Bearer ${t}` }, "GET")).status;
    const exp = await newToken(operatorCookie, "role", "exp");
    await app.domain.store.db.update(app.domain.store.t.apiTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(app.domain.store.t.apiTokens.id, exp.info.id));
    expect(await bad(exp.token)).toBe(401);

    const rev = await newToken(operatorCookie, "role", "rev");
    expect(await bad(rev.token)).toBe(200);
    expect((await call("tokens.revoke", { id: rev.info.id }, { cookie: operatorCookie })).status).toBe(200);
    expect(await bad(rev.token)).toBe(401);

    expect(await bad("rh_" + "A".repeat(43))).toBe(401);
    expect(await bad("x".repeat(5000))).toBe(401);
    // A bad bearer is not rescued by a valid cookie: the header alone decides.
    expect((await call("machines.summary", undefined, { authorization: "Bearer nope", cookie: admin }, "GET")).status).toBe(401);

    const dis = await newToken(operatorCookie, "role", "dis");
    expect(await bad(dis.token)).toBe(200);
    const ops = (await call("users.list", undefined, { cookie: admin }, "GET")).data.find((u: { name: string }) => u.name === "ops");
    expect((await call("users.update", { id: ops.id, disabled: true }, { cookie: admin })).status).toBe(200);
    expect(await bad(dis.token)).toBe(401);
    expect((await call("users.update", { id: ops.id, disabled: false }, { cookie: admin })).status).toBe(200);
    operatorCookie = await loginCookie("ops", "ops-password-1");
  });

  it("owners revoke their own tokens; admins revoke anyone's; others get not-found", async () => {
    const mine = await newToken(operatorCookie, "role", "mine");
    const admins = await newToken(admin, "role", "admins");
    expect((await call("tokens.revoke", { id: admins.info.id }, { cookie: operatorCookie })).status).toBe(404);
    expect((await call("tokens.list", { all: true }, { cookie: operatorCookie }, "GET")).status).toBe(403);
    const all = await call("tokens.list", { all: true }, { cookie: admin }, "GET");
    expect(all.data.map((t: { id: number }) => t.id)).toEqual(expect.arrayContaining([mine.info.id, admins.info.id]));
    expect((await call("tokens.revoke", { id: mine.info.id }, { cookie: admin })).status).toBe(200);
    expect((await call("auth.me", undefined, { authorization: `Bearer ${mine.token}` }, "GET")).data).toBeNull();
  });

  it("bearer requests skip the cookie CSRF guard; cookie requests are still checked", async () => {
    const { token } = await newToken(operatorCookie, "role", "csrf");
    const evil = { origin: "https://evil.example" };
    expect((await call("racks.create", { name: "bearer-foreign-origin" }, { ...evil, authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await call("racks.create", { name: "cookie-foreign-origin" }, { ...evil, cookie: operatorCookie })).status).toBe(403);
  });
});

describe("API tokens on socket.io", () => {
  it("accepts a token in the handshake auth or header, refuses bad ones", async () => {
    const { token } = await newToken(operatorCookie, "role", "sock");
    const s = await connect({ auth: { token } });
    const ack = await s.timeout(5000).emitWithAck("subscribe", { machineId: 1 });
    expect(ack).toEqual({ ok: true });
    await connect({ headers: { authorization: `Bearer ${token}` } });
    await expect(connect({ auth: { token: "rh_nope" } })).rejects.toThrow(/UNAUTHENTICATED/);
    await expect(connect({ auth: { token: 42 } })).rejects.toThrow(/UNAUTHENTICATED/);
    // A bad token is not rescued by a valid cookie.
    await expect(connect({ auth: { token: "rh_nope" }, headers: { cookie: admin } })).rejects.toThrow(/UNAUTHENTICATED/);
  });

  it("a read-only token is a viewer on sockets: it may not take a console", async () => {
    const ro = await newToken(operatorCookie, "read", "sock-ro");
    const s = await connect({ auth: { token: ro.token } });
    const r = await s.timeout(5000).emitWithAck("console:take", { machineId: 1 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/operator role/);
    const input = await s.timeout(5000).emitWithAck("console:input", { machineId: 1, data: "x" });
    expect(input.ok).toBe(false);
    expect(input.error).toMatch(/operator role/);
  });

  it("a socket opened with a token ends when the token is revoked", async () => {
    const t = await newToken(operatorCookie, "role", "sock-revoke");
    const s = await connect({ auth: { token: t.token } });
    expect(await s.timeout(5000).emitWithAck("subscribe", { machineId: 1 })).toEqual({ ok: true });
    expect((await call("tokens.revoke", { id: t.info.id }, { cookie: operatorCookie })).status).toBe(200);
    // The next message re-reads the token: the server disconnects the socket instead of answering.
    await expect(s.timeout(5000).emitWithAck("subscribe", { machineId: 1 })).rejects.toThrow(/disconnected/);
    expect(s.connected).toBe(false);
  });
});
