/**
 * Browsers on two processes watching one serial console (vitest project postgres only): two HTTP servers with their
 * socket gateways and console managers on one PostgreSQL, socket.io clients on each. The console stream lives on the
 * process of the first viewer; a browser on the other sees its bytes, takes the keyboard and types.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type pg from "pg";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { login, SESSION_COOKIE } from "../auth/sessions";
import type { Domain } from "../context";
import { silentLogger } from "../log";
import { createConsoleManager, type ConsoleManager, type ConsoleStatus } from "../oob/console/manager";
import { createOobRuntime, defaultOobConfig } from "../oob/registry";
import { testConsoleDriver, type TestStream } from "../oob/testing/console-driver";
import { createHarness, type Harness } from "../testing/harness";
import { until } from "../testing/until";
import { EventBus } from "./bus";
import { attachGateway } from "./gateway";

let h: Harness;
let machineId: number;
const streams: TestStream[] = [];
const servers: { server: http.Server; gateway: ReturnType<typeof attachGateway>; consoles: ConsoleManager; url: string }[] = [];
const sockets: Socket[] = [];
const cookies: Record<string, string> = {};

async function serve(name: string) {
  const url = (h.store.db as unknown as { $client: pg.Pool }).$client.options.connectionString!;
  const oob = createOobRuntime(defaultOobConfig(h.dataDir, { consoleDir: `${h.dataDir}/consoles-${name}` }), { extraDrivers: [testConsoleDriver(name, streams)] });
  const d: Domain = { db: h.db, store: h.store, bus: new EventBus(), secrets: h.domain.secrets, log: silentLogger, oob };
  const consoles = createConsoleManager(d, { databaseUrl: url, owner: `${name}:1`, channel: `rh_gw_console_${process.pid}`, batchMs: 5 });
  await consoles.start();
  const server = http.createServer();
  const gateway = attachGateway({ httpServer: server, db: h.db, store: h.store, bus: d.bus, log: silentLogger, consoles });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const s = { server, gateway, consoles, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  servers.push(s);
  return s;
}

async function browser(url: string, cookie: string) {
  const s = connectSocket(url, { path: "/socket.io", transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie } });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => (s.on("connect", resolve), s.on("connect_error", reject)));
  const data: Buffer[] = [];
  const statuses: ConsoleStatus[] = [];
  s.on("console:data", (m: { data: ArrayBuffer }) => data.push(Buffer.from(m.data)));
  s.on("console:status", (st: ConsoleStatus) => statuses.push(st));
  return { s, bytes: () => Buffer.concat(data), last: () => statuses.at(-1) };
}

beforeAll(async () => {
  h = createHarness();
  machineId = (await h.operator.machines.enroll({ name: "gw-con", bootMac: "52:54:00:c2:00:01", bmc: { driver: "fake", address: "10.65.0.1", username: "admin", password: "pw" } })).id;
  await h.addUser("olga", "operator", "operator-password-1");
  await h.addUser("oscar", "operator", "operator-password-2");
  await h.addUser("vera", "viewer", "viewer-password-1");
  for (const [n, pw] of [["olga", "operator-password-1"], ["oscar", "operator-password-2"], ["vera", "viewer-password-1"]] as const)
    cookies[n] = `${SESSION_COOKIE}=${(await login(h.store, n, pw, 600_000)).token}`;
});
afterAll(async () => {
  for (const s of sockets) s.disconnect();
  for (const s of servers) {
    await s.gateway.close();
    await s.consoles.closeAll();
    await new Promise((r) => s.server.close(r));
  }
  h.close();
});

describe("a console watched from two processes", () => {
  it("bytes reach browsers on the other process; a browser there takes the keyboard and types; roles hold; leaving releases", async () => {
    const a = await serve("proc-a");
    const b = await serve("proc-b");
    const oscar = await browser(a.url, cookies.oscar!);
    expect(await oscar.s.emitWithAck("console:join", { machineId })).toMatchObject({ ok: true, status: { state: "open", viewers: 1 } });
    expect(streams).toHaveLength(1);
    expect(streams[0]!.proc).toBe("proc-a");
    streams[0]!.push(Buffer.from([0x1b, 0x5b, 0x48, 0x00, 0xff, 0x0d, 0x0a]));

    const olga = await browser(b.url, cookies.olga!);
    const vera = await browser(b.url, cookies.vera!);
    const joined = await olga.s.emitWithAck("console:join", { machineId });
    expect(joined).toMatchObject({ ok: true, canType: true });
    expect(Buffer.from(joined.recent as ArrayBuffer).equals(Buffer.from([0x1b, 0x5b, 0x48, 0x00, 0xff, 0x0d, 0x0a]))).toBe(true);
    expect(await vera.s.emitWithAck("console:join", { machineId })).toMatchObject({ ok: true, canType: false });
    await until("three viewers shown at A", () => oscar.last()?.viewers === 3);

    const out = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    streams[0]!.push(out);
    await until("bytes at the browsers on B", () => olga.bytes().length >= out.length && vera.bytes().length >= out.length);
    expect(olga.bytes().equals(out)).toBe(true);
    expect(vera.bytes().equals(out)).toBe(true);

    // The viewer role cannot take it; olga (on B) takes it and types into A's stream; oscar (on A) cannot type.
    expect(await vera.s.emitWithAck("console:take", { machineId })).toMatchObject({ ok: false, error: expect.stringMatching(/operator role/) });
    expect(await olga.s.emitWithAck("console:input", { machineId, data: "x" })).toMatchObject({ ok: false, error: "Take the keyboard first" });
    expect(await olga.s.emitWithAck("console:take", { machineId })).toEqual({ ok: true });
    await until("oscar sees olga holding it", () => oscar.last()?.holder === "olga");
    expect(await olga.s.emitWithAck("console:input", { machineId, data: "reboot\r" })).toEqual({ ok: true });
    await until("keys at A's stream", () => Buffer.concat(streams[0]!.written).toString() === "reboot\r");
    expect(await oscar.s.emitWithAck("console:input", { machineId, data: "y" })).toMatchObject({ ok: false, error: "Take the keyboard first" });

    // Olga's tab closes: the keyboard is free everywhere, and oscar may take it.
    olga.s.disconnect();
    await until("released at A", () => oscar.last()?.holder === null && oscar.last()?.viewers === 2);
    expect(await oscar.s.emitWithAck("console:take", { machineId })).toEqual({ ok: true });
    await until("vera sees oscar", () => vera.last()?.holder === "oscar");
  });
});
