import http from "node:http";
import type { AddressInfo } from "node:net";
import { io as connectSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LiveEvent } from "../../lib/live-events";
import { login, SESSION_COOKIE } from "../auth/sessions";
import { silentLogger } from "../log";
import { createHarness, type Harness } from "../testing/harness";
import { until } from "../testing/until";
import { attachGateway } from "./gateway";

describe("gateway fan-out", () => {
  let h: Harness;
  let server: http.Server;
  let gateway: ReturnType<typeof attachGateway>;
  beforeAll(async () => {
    h = createHarness();
    server = http.createServer();
    gateway = attachGateway({ httpServer: server, db: h.db, store: h.domain.store, bus: h.domain.bus, log: silentLogger });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    await h.addUser("gw-viewer", "viewer", "viewer-password-1");
  });
  afterAll(async () => {
    await gateway.close();
    await new Promise((r) => server.close(r));
    h.close();
  });

  const event: LiveEvent = { type: "machine.changed", machineId: 1, name: "m1", state: "enrolled", powerState: "off", maintenance: false, rackId: null };

  it("with no client connected, bus events are not broadcast at all", () => {
    const to = vi.spyOn(gateway.io, "to");
    h.domain.bus.publish(event);
    h.domain.bus.publish({ type: "event.created", event: { id: 1, ts: 0, actor: "system", machineId: null, kind: "k", message: "m", payload: null } });
    expect(to).not.toHaveBeenCalled();
    to.mockRestore();
  });

  it("a connected client still gets them", async () => {
    const { token } = await login(h.domain.store!, "gw-viewer", "viewer-password-1", 60_000);
    const { port } = server.address() as AddressInfo;
    const socket = connectSocket(`http://127.0.0.1:${port}`, { path: "/socket.io", transports: ["websocket"], extraHeaders: { cookie: `${SESSION_COOKIE}=${token}` } });
    const got: LiveEvent[] = [];
    socket.on("live", (e: LiveEvent) => got.push(e));
    try {
      await until("connected", () => socket.connected, 5_000);
      await until("a live event", () => {
        h.domain.bus.publish(event);
        return got.length > 0;
      }, 5_000);
      expect(got[0]).toEqual(event);
    } finally {
      socket.close();
    }
  });
});
