/**
 * Live install logs over real sockets (DESIGN §9): a viewer joins `job:<id>`, lines posted by an agent over HTTP
 * arrive live; after a reconnect the client subscribes first, backfills from its last seq and dedupes.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { io as connectSocket, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogLineDto } from "../../lib/jobs";
import type { LiveEvent } from "../../lib/live-events";
import { EMPTY_LOG, mergeLines } from "../../lib/log-buffer";
import { startApp, type App } from "../app";
import { createUser } from "../auth/users";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { performAction } from "../operator/lifecycle-actions";
import { startBatch } from "../operator/bulk-actions";
import { abortBatch } from "../orchestrator/batches";
import { currentAgentNonceForMac } from "../netboot/agent-nonce";
import type { MachinePorts } from "../orchestrator/ports";
import { until } from "../testing/until";
import { testDatabaseEnv } from "../testing/test-store";

const noop = async () => {};
const ports: MachinePorts = { setBootTarget: noop, setBootDevice: noop, powerOn: noop, powerCycle: noop, powerOff: noop };
let app: App;
let dir: string;
let viewerCookie: string;
const sockets: Socket[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-jobroom-"));
  const config = loadConfig({ ...(await testDatabaseEnv()), RACKHAND_DATA_DIR: dir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "admin-password-1", NODE_ENV: "test" }, { ui: false });
  app = await startApp(config, silentLogger, { ports, orchestrator: { tickMs: 50 } });
  await createUser(app.domain, { name: "vera", role: "viewer", password: "vera-password-1" }, "test");
  const res = await fetch(`${app.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "vera", password: "vera-password-1" }),
  });
  viewerCookie = res.headers.getSetCookie()[0]!.split(";")[0]!;
});
afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<Socket & { events: LiveEvent[] }> {
  const s = connectSocket(app.url, { path: "/socket.io", transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie: viewerCookie } });
  sockets.push(s);
  const events: LiveEvent[] = [];
  s.on("live", (e: LiveEvent) => events.push(e));
  await new Promise<void>((resolve, reject) => {
    s.on("connect", resolve);
    s.on("connect_error", reject);
  });
  return Object.assign(s, { events });
}


async function agent(p: string, body: unknown, token?: string) {
  const res = await fetch(`${app.url}/api/agent/v1${p}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  return (await res.json());
}

const lines = (from: number, to: number) => ({
  lines: Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, ts: Date.now(), stream: "stdout", text: `line ${from + i}` })),
});
const logLinesOf = (events: LiveEvent[], jobId: number) =>
  events.flatMap((e) => (e.type === "log.lines" && e.jobId === jobId ? e.lines : [])).map((l) => l.seq);

async function backfill(jobId: number, afterSeq: number): Promise<LogLineDto[]> {
  const q = encodeURIComponent(JSON.stringify({ jobId, afterSeq, limit: 5000 }));
  const res = await fetch(`${app.url}/api/trpc/jobs.logs?input=${q}`, { headers: { cookie: viewerCookie } });
  expect(res.status).toBe(200);
  return (await res.json()).result.data as LogLineDto[];
}

describe("job rooms", () => {
  it("a viewer follows a job's lines and steps live; a reconnect backfills after its last seq without gaps or duplicates", async () => {
    const d = app.domain;
    const profile = (await d.store.db
      .insert(d.store.t.osProfiles)
      .values({ name: "room-img", kind: "image", osFamily: "debian", imageUrl: "http://127.0.0.1/x.raw.gz", imageSha256: "ab".repeat(32), createdAt: new Date(), updatedAt: new Date() })
      .returning())[0]!;
    const mac = "52:54:00:88:00:01";
    const { id } = await enrollMachine(d, { name: "room-1", bootMac: mac, uHeight: 1, osProfileId: profile.id }, "test");
    await transition(d, id, "manage", { actor: "test" });
    await transition(d, id, "provide", { actor: "test" });

    const watcher = await connect();
    const other = await connect();
    const bystander = await connect(); // joined only `fleet`
    const jobId = (await performAction(d, id, "deploy", "user:test")).jobId!;
    expect(await watcher.emitWithAck("subscribe", { jobId })).toEqual({ ok: true });
    expect(await other.emitWithAck("subscribe", { jobId })).toEqual({ ok: true });
    expect(await watcher.emitWithAck("subscribe", { jobId: "x" })).toMatchObject({ ok: false });

    const { token } = await agent("/lookup", { macs: [mac], nonce: await currentAgentNonceForMac(d, mac) });
    const step = await until("an agent step", async () => (await agent("/heartbeat", { waitS: 2 }, token)).steps[0]);
    expect(step.name).toBe("inventory");
    // Step changes reach the job room (the timeline follows them), not the fleet.
    await until("step.changed", () => watcher.events.some((e) => e.type === "step.changed" && e.stepId === step.id && e.state === "running"));
    expect(bystander.events.some((e) => e.type === "step.changed")).toBe(false);

    await agent(`/steps/${step.id}/logs`, lines(0, 4), token);
    await until("lines 0-4 on both", () => logLinesOf(watcher.events, jobId).length === 5 && logLinesOf(other.events, jobId).length === 5);
    expect(logLinesOf(other.events, jobId)).toEqual([0, 1, 2, 3, 4]);

    // The watcher drops off; lines keep coming; it comes back as a new socket, as a browser would.
    let view = mergeLines(EMPTY_LOG, watcher.events.flatMap((e) => (e.type === "log.lines" ? e.lines : [])), 20_000);
    watcher.disconnect();
    await agent(`/steps/${step.id}/logs`, lines(5, 9), token);
    await until("lines 5-9 on the other page", () => logLinesOf(other.events, jobId).length === 10);
    const back = await connect();
    expect(await back.emitWithAck("subscribe", { jobId })).toEqual({ ok: true });
    // Subscribed first: a line posted now arrives live, possibly before the backfill answers.
    await agent(`/steps/${step.id}/logs`, lines(10, 11), token);
    await until("live 10-11 after the reconnect", () => logLinesOf(back.events, jobId).length === 2);
    const page = await backfill(jobId, view.lastSeq);
    expect(page.map((l) => l.seq)).toEqual([5, 6, 7, 8, 9, 10, 11]);
    view = mergeLines(view, back.events.flatMap((e) => (e.type === "log.lines" ? e.lines : [])), 20_000);
    view = mergeLines(view, page, 20_000);
    expect(view.lines.map((l) => l.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(view.lines.map((l) => l.text)).toContain("line 7");

    // Lines of a job never reach sockets that did not ask for it.
    expect(logLinesOf(bystander.events, jobId)).toEqual([]);
  });
});

describe("batch rooms", () => {
  it("carry the step changes of the batch's jobs (the batch page's progress), and nothing reaches the fleet", async () => {
    const d = app.domain;
    const macs = ["52:54:00:88:01:01", "52:54:00:88:01:02"];
    const ids: number[] = [];
    for (const [i, mac] of macs.entries()) {
      // A fake BMC: the plan skips machines without one for every job action.
      const bmc = { address: `10.252.0.${i + 1}`, port: 623, username: "root", password: "pw", driver: "fake" as const, privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
      const { id } = await enrollMachine(d, { name: `broom-${i}`, bootMac: mac, uHeight: 1, bmc }, "test");
      await transition(d, id, "manage", { actor: "test" });
      ids.push(id);
    }
    const { batchId } = await startBatch(d, { selection: { ids }, kind: "inspect", concurrency: 2, failureThresholdPct: 20 }, "user:test");
    const page = await connect();
    const otherBatch = await connect();
    const bystander = await connect();
    expect(await page.emitWithAck("subscribe", { batchId })).toEqual({ ok: true });
    expect(await otherBatch.emitWithAck("subscribe", { batchId: batchId + 1000 })).toEqual({ ok: true });
    // The agent of the first machine shows up: wait_agent ends and inventory is handed out, all live on the batch page.
    const { token, jobId } = await until("lookup", async () => {
      const nonce = await currentAgentNonceForMac(app.domain, macs[0]!);
      if (!nonce) return null;
      const r = await agent("/lookup", { macs: [macs[0]], nonce });
      return r.token ? r : null;
    });
    const step = await until("an agent step", async () => (await agent("/heartbeat", { waitS: 2 }, token)).steps[0]);
    await until("inventory running on the batch page", () =>
      page.events.some((e) => e.type === "step.changed" && e.stepId === step.id && e.state === "running" && e.batchId === batchId && e.jobId === jobId),
    );
    expect(page.events.some((e) => e.type === "step.changed" && e.state === "succeeded" && e.jobId === jobId)).toBe(true);
    expect(otherBatch.events.some((e) => e.type === "step.changed")).toBe(false);
    expect(bystander.events.some((e) => e.type === "step.changed")).toBe(false);
    await abortBatch(d, batchId, true, "user:test");
  });
});
