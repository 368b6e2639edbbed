/** Shutdown: app.close() does not wait for clients (the whole server, over a real socket). */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { startApp, type App } from "./app";
import { loadConfig } from "./config";
import { silentLogger } from "./log";
import { testDatabaseEnv } from "./testing/test-store";

let dataDir: string | undefined;
let app: App | undefined;
afterAll(() => {
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

it("closes while a client holds a request whose body it never finished sending", async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-close-"));
  const config = loadConfig({ ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "close-test-pw-1" }, { ui: false });
  app = await startApp(config, silentLogger);
  const { port } = new URL(app.url);
  const sock = net.connect(Number(port), "127.0.0.1");
  const closed = new Promise<void>((resolve) => sock.on("close", () => resolve()));
  sock.on("error", () => {});
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  // 10 of the 1,000 bytes announced: the request stays in progress on the server.
  sock.write("POST /api/trpc/auth.login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"a");
  await new Promise((r) => setTimeout(r, 300));
  // Without closing the connections, server.close() waits for this request until Node's requestTimeout (300 s):
  // the test's own timeout ends it first.
  await app.close();
  await closed;
  expect(sock.destroyed).toBe(true);
}, 15_000);
