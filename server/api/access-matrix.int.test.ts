/**
 * The access matrix over real HTTP and real socket.io clients, generated from the router: every procedure of
 * appRouter × every principal (anonymous, each role by session cookie, a read-only token, role tokens), and the
 * socket rooms and console events per role. A procedure missing from ACCESS fails the first test.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../../lib/schemas";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { machineInput } from "../testing/fixtures";
import { ACCESS, READ_ONLY_MUTATIONS } from "./access";
import { appRouter } from "./root";
import { testDatabaseEnv } from "../testing/test-store";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const PROCS = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: string; inputs: unknown[] } }>).map(
  ([p, v]) => ({ path: p, type: v._def.type as "query" | "mutation", hasInput: v._def.inputs.length > 0 }),
);

interface Principal {
  label: string;
  role: Role | null;
  readOnly: boolean;
  headers: Record<string, string>;
  socketAuth?: Record<string, string>;
}

let dataDir: string;
let app: App;
const principals: Principal[] = [];
const sockets: Socket[] = [];
let machineId = 0;

async function post(proc: string, input: unknown, headers: Record<string, string>) {
  const res = await fetch(`${app.url}/api/trpc/${proc}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(input) });
  return { status: res.status, body: (await res.json()) };
}
async function login(name: string, password: string) {
  const res = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name, password }) });
  expect(res.status).toBe(200);
  return res.headers.getSetCookie()[0]!.split(";")[0]!;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-matrix-"));
  const config = loadConfig({ ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "matrix-admin-pw" }, { ui: false });
  app = await startApp(config, silentLogger);
  const admin = await login("admin", "matrix-admin-pw");
  const cookies: Record<Role, string> = { admin, operator: "", viewer: "" };
  for (const role of ["operator", "viewer"] as const) {
    expect((await post("users.create", { name: `m-${role}`, role, password: `${role}-password-1` }, { cookie: admin })).status).toBe(200);
    cookies[role] = await login(`m-${role}`, `${role}-password-1`);
  }
  const token = async (cookie: string, scope: "read" | "role") =>
    (await post("tokens.create", { name: `matrix-${scope}`, scope, expiresInDays: 1 }, { cookie })).body.result.data.token as string;
  principals.push({ label: "anonymous", role: null, readOnly: false, headers: {} });
  for (const role of ["viewer", "operator", "admin"] as const) principals.push({ label: `${role} session`, role, readOnly: false, headers: { cookie: cookies[role] } });
  for (const role of ["viewer", "operator", "admin"] as const) {
    const t = await token(cookies[role], "role");
    principals.push({ label: `${role} role token`, role, readOnly: false, headers: { authorization: `Bearer ${t}` }, socketAuth: { token: t } });
  }
  const ro = await token(admin, "read");
  principals.push({ label: "admin read-only token", role: "admin", readOnly: true, headers: { authorization: `Bearer ${ro}` }, socketAuth: { token: ro } });
  machineId = (await post("machines.enroll", machineInput(771), { cookie: admin })).body.result?.data?.id ?? 0;
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** What a principal must get from a procedure called with an input that fails validation. */
function expected(p: Principal, proc: (typeof PROCS)[number]): number {
  const rule = ACCESS[proc.path]!;
  if (rule !== "public") {
    if (!p.role) return 401;
    if (p.readOnly && proc.type === "mutation" && !READ_ONLY_MUTATIONS.includes(proc.path)) return 403;
    if (RANK[p.role] < RANK[rule]) return 403;
  }
  // Passed the access check: a bad input is refused by validation; a procedure without input runs.
  return proc.hasInput ? 400 : 200;
}

describe("HTTP access matrix (generated from appRouter)", () => {
  it("serves the OpenAPI document without a credential at GET /api/openapi.json", async () => {
    const res = await fetch(`${app.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toHaveLength(PROCS.length);
  });

  it("every procedure has an access rule, and every rule names a procedure", () => {
    expect(PROCS.length).toBeGreaterThanOrEqual(49);
    expect(PROCS.map((p) => p.path).sort()).toEqual(Object.keys(ACCESS).sort());
  });

  it("every procedure × principal gets exactly the status its rule says", async () => {
    const bad = "\u0000not-an-input";
    const rows: string[] = [];
    for (const proc of PROCS) {
      // auth.logout would end the admin session the other rows use: it is public and covered by auth tests.
      if (proc.path === "auth.logout") continue;
      for (const p of principals) {
        const res =
          proc.type === "query"
            ? await fetch(`${app.url}/api/trpc/${proc.path}${proc.hasInput ? `?input=${encodeURIComponent(JSON.stringify(bad))}` : ""}`, { headers: p.headers })
            : await fetch(`${app.url}/api/trpc/${proc.path}`, { method: "POST", headers: { "content-type": "application/json", ...p.headers }, body: JSON.stringify(bad) });
        const want = expected(p, proc);
        if (res.status !== want) rows.push(`${proc.path} as ${p.label}: got ${res.status}, want ${want}`);
        await res.body?.cancel();
      }
    }
    expect(rows).toEqual([]);
  });
});

function connect(p: Principal): Promise<Socket> {
  const s = connectSocket(app.url, {
    path: "/socket.io",
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    auth: p.socketAuth,
    extraHeaders: p.socketAuth ? {} : p.headers,
  });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => reject(e));
  });
}

describe("socket.io access matrix", () => {
  it("anonymous sockets are refused at the handshake", async () => {
    await expect(connect(principals[0]!)).rejects.toThrow(/UNAUTHENTICATED/);
  });

  it("every signed-in principal may join machine, job and batch rooms and watch a console", async () => {
    expect(machineId).toBeGreaterThan(0);
    for (const p of principals.slice(1)) {
      const s = await connect(p);
      for (const room of [{ machineId }, { jobId: 1 }, { batchId: 1 }]) {
        expect(await s.timeout(5000).emitWithAck("subscribe", room), `${p.label} ${JSON.stringify(room)}`).toEqual({ ok: true });
      }
      expect((await s.timeout(5000).emitWithAck("subscribe", { machineId: "1; drop" })).ok).toBe(false);
      const join = await s.timeout(5000).emitWithAck("console:join", { machineId });
      // No BMC on this machine: the console refuses for that reason, never for the role.
      expect(String(join.error ?? "")).not.toMatch(/role/);
      if (join.ok) expect(join.canType).toBe(p.role !== "viewer" && !p.readOnly);
      s.disconnect();
    }
  });

  it("console take and input: refused for viewers and read-only tokens, allowed past the role check for operators and admins", async () => {
    for (const p of principals.slice(1)) {
      const s = await connect(p);
      const mayType = p.role !== "viewer" && !p.readOnly;
      for (const [event, payload] of [
        ["console:take", { machineId }],
        ["console:input", { machineId, data: "ls\n" }],
      ] as const) {
        const r = await s.timeout(5000).emitWithAck(event, payload);
        if (mayType) expect(String(r.error ?? ""), `${p.label} ${event}`).not.toMatch(/operator role/);
        else {
          expect(r.ok, `${p.label} ${event}`).toBe(false);
          expect(r.error).toMatch(/needs the operator role/);
        }
      }
      s.disconnect();
    }
  });
});
