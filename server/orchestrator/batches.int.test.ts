import fs from "node:fs";
import { storeOf } from "../db/store";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../lib/live-events";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { enrollMachine, setMaintenance } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { currentAgentNonceForMac } from "../netboot/agent-nonce";
import { setBatchSettings } from "./batch-settings";
import { startBatch } from "../operator/bulk-actions";
import { abortBatch, getBatch, resumeBatch } from "./batches";
import type { MachinePorts } from "./ports";
import { until } from "../testing/until";
import { testDatabaseEnv } from "../testing/test-store";

/** Ports that record calls; machines in `failing` fail set_boot_device permanently (a plain Error is permanent). */
function recordingPorts() {
  const calls: string[] = [];
  const failing = new Set<number>();
  const powerFailing = new Set<number>();
  const port =
    (name: string) =>
    async (id: number, ...args: unknown[]) => {
      calls.push(`${name}(${[id, ...args].join(",")})`);
      if (name === "setBootDevice" && failing.has(id)) throw new Error(`BMC of machine ${id} refuses (test)`);
      if (name.startsWith("power") && powerFailing.has(id)) throw new Error(`BMC of machine ${id} refuses power (test)`);
    };
  const ports: MachinePorts = {
    setBootTarget: port("setBootTarget"),
    setBootDevice: port("setBootDevice"),
    powerOn: port("powerOn"),
    powerCycle: port("powerCycle"),
    powerOff: port("powerOff"),
  };
  return { ports, calls, failing, powerFailing };
}

/** A test HTTP server that records webhook POSTs and answers with `status`. */
function hookServer() {
  const received: { body: any }[] = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      received.push({ body: JSON.parse(raw) });
      res.writeHead(status).end();
    });
  });
  return {
    received,
    setStatus: (s: number) => (status = s),
    url: () => `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    listen: () => new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r())),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const rec = recordingPorts();
const hook = hookServer();
const dirs: string[] = [];
let app: App;
let seq = 0;
const published: LiveEvent[] = [];

/** The database of each data directory: a restart (boot of the same directory) finds its data again. */
const dbEnvs = new Map<string, { RACKHAND_DATABASE_URL?: string }>();

async function boot(dir: string): Promise<App> {
  const dbEnv = dbEnvs.get(dir) ?? (await testDatabaseEnv());
  dbEnvs.set(dir, dbEnv);
  const config = loadConfig({ ...dbEnv, RACKHAND_DATA_DIR: dir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "admin-password-1", NODE_ENV: "test" }, { ui: false, powerSync: false });
  const a = await startApp(config, silentLogger, {
    ports: rec.ports,
    orchestrator: { tickMs: 50, random: () => 0 },
    batches: { webhook: { timeoutMs: 1000, attempts: 2, backoffMs: 10 } },
  });
  a.domain.bus.subscribe((e) => published.push(e));
  return a;
}
const tempDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-batch-"));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  await hook.listen();
  app = await boot(tempDir());
});
afterAll(async () => {
  await app.close();
  await hook.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});


async function agent(a: App, p: string, body: unknown, token?: string) {
  const res = await fetch(`${a.url}/api/agent/v1${p}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) };
}

/** Be the machine's agent: look up its job, report every step it is given as done, until the job ends. */
async function runAgent(a: App, mac: string): Promise<void> {
  const token = (await until("lookup", async () => {
    // The nonce of the machine's boot entry exists once its queued job started (it entered inspecting).
    const nonce = await currentAgentNonceForMac(a.domain, mac);
    if (!nonce) return false;
    const r = await agent(a, "/lookup", { macs: [mac], nonce });
    return r.status === 200 && r.body.token;
  })) as string;
  for (;;) {
    const hb = await agent(a, "/heartbeat", { waitS: 2 }, token);
    if (hb.status === 401 || hb.body.done) return;
    for (const s of hb.body.steps) await agent(a, `/steps/${s.id}/result`, { attempt: s.attempt, ok: true, result: {} }, token);
  }
}

/** Manageable machines (inspect is allowed from there). */
async function manageable(a: App, n: number, prefix = "batch", withoutBmc = false) {
  const out: { id: number; mac: string }[] = [];
  for (let i = 0; i < n; i++) {
    const k = ++seq;
    const mac = `52:54:00:88:${(k >> 8).toString(16).padStart(2, "0")}:${(k & 255).toString(16).padStart(2, "0")}`;
    // A fake BMC: the plan (server/operator/plan.ts) skips machines without one for every job action.
    const bmc = withoutBmc ? undefined : { address: `10.251.${k >> 8}.${k & 255}`, port: 623, username: "root", password: "pw", driver: "fake" as const, privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
    const { id } = await enrollMachine(a.domain, { name: `${prefix}-${String(k).padStart(3, "0")}`, bootMac: mac, uHeight: 1, ...(bmc && { bmc }) }, "test");
    await transition(a.domain, id, "manage", { actor: "test" });
    out.push({ id, mac });
  }
  return out;
}

const batchRow = async (a: App, id: number) => (await a.domain.store.db.select().from(a.domain.store.t.batches).where(eq(a.domain.store.t.batches.id, id)))[0]!;
const jobStates = async (a: App, batchId: number) =>
  (await a.domain.store.db
    .select({ machineId: a.domain.store.t.jobs.machineId, state: a.domain.store.t.jobs.state })
    .from(a.domain.store.t.jobs)
    .where(eq(a.domain.store.t.jobs.batchId, batchId))
    .orderBy(a.domain.store.t.jobs.id));
const running = async (a: App, batchId: number) => (await jobStates(a, batchId)).filter((j) => j.state === "running").map((j) => j.machineId);
const macOf = (ms: { id: number; mac: string }[], id: number) => ms.find((m) => m.id === id)!.mac;

describe("batch creation", () => {
  it("refuses a batch no machine can take and skips machines that cannot take the action", async () => {
    const ms = await manageable(app, 2);
    const { id: enrolled } = await enrollMachine(app.domain, { name: `batch-enrolled-${++seq}`, bootMac: "52:54:00:88:ff:01", uHeight: 1 }, "test");
    // Release of a Manageable machine: nothing would act, so nothing is asked to be confirmed.
    await expect(startBatch(app.domain, { selection: { ids: [ms[0]!.id] }, kind: "clean", concurrency: 1, failureThresholdPct: 20 }, "user:t")).rejects.toThrow(
      /No machine in the selection can take "Release"/,
    );
    await expect(startBatch(app.domain, { selection: { ids: [enrolled] }, kind: "inspect", concurrency: 1, failureThresholdPct: 20 }, "user:t")).rejects.toThrow(
      /No machine in the selection can take "Inspect"/,
    );
    const r = await startBatch(app.domain, { selection: { ids: [...ms.map((m) => m.id), enrolled] }, kind: "inspect", concurrency: 5, failureThresholdPct: 100 }, "user:t");
    expect(r.queued).toBe(2);
    expect(r.skipped).toEqual([expect.objectContaining({ machineId: enrolled, error: expect.stringMatching(/not allowed in state Enrolled/) })]);
    expect((await getBatch(storeOf(app.domain), r.batchId)).skippedMachines).toHaveLength(1);
    await abortBatch(app.domain, r.batchId, true, "user:t");
  });

  it("takes all machines matching a filter", async () => {
    const ms = await manageable(app, 3, "flt");
    const selection = { filter: { q: "flt-" } };
    await expect(startBatch(app.domain, { selection, kind: "clean", concurrency: 1, failureThresholdPct: 20, confirmCount: 3 }, "user:t")).rejects.toThrow(
      /No machine in the selection can take "Release": flt-\d+ Release is not allowed in state Manageable/,
    );
    const r = await startBatch(app.domain, { selection, kind: "inspect", concurrency: 1, failureThresholdPct: 20 }, "user:t");
    expect(r).toMatchObject({ queued: 3, skipped: [] });
    expect((await getBatch(storeOf(app.domain), r.batchId)).machines.map((m) => m.machineId).sort()).toEqual(ms.map((m) => m.id).sort());
    await abortBatch(app.domain, r.batchId, true, "user:t");
  });
});

describe("a batch under its concurrency limit", () => {
  it("never runs more than N jobs at once, and finishes when every machine is done", async () => {
    const ms = await manageable(app, 6);
    const { batchId } = await startBatch(app.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 2, failureThresholdPct: 20 }, "user:t");
    let max = 0;
    const off = app.domain.bus.subscribe((e) => {
      if (e.type === "job.changed" && e.batchId === batchId) void running(app, batchId).then((r) => (max = Math.max(max, r.length)), () => {}); // a read racing the test's end counts nothing
    });
    const done = new Set<number>();
    while (done.size < ms.length) {
      const now = await until("running jobs", async () => {
        const r = (await running(app, batchId)).filter((id) => !done.has(id));
        return r.length > 0 && r;
      });
      expect((await running(app, batchId)).length).toBeLessThanOrEqual(2);
      await Promise.all(now.map((id) => runAgent(app, macOf(ms, id)).then(() => done.add(id))));
    }
    await until("batch finished", async () => (await batchRow(app, batchId)).state === "finished");
    off();
    expect(max).toBe(2);
    expect((await jobStates(app, batchId)).every((j) => j.state === "succeeded")).toBe(true);
    expect((await batchRow(app, batchId)).finishedAt).not.toBeNull();
    const detail = await getBatch(storeOf(app.domain), batchId);
    expect(detail.counts).toMatchObject({ total: 6, succeeded: 6, failed: 0 });
    expect(detail.machines.map((m) => m.machineState)).toEqual(Array(6).fill("available"));
  });
});

describe("the failure threshold", () => {
  it("pauses the batch and alerts (event, live event, webhook); resume continues to the end", async () => {
    await setBatchSettings(app.domain, { webhookUrl: hook.url(), publicUrl: "https://rackhand.example/" }, "user:admin");
    hook.received.length = 0;
    const ms = await manageable(app, 6);
    for (const m of ms.slice(0, 3)) rec.failing.add(m.id);
    const { batchId } = await startBatch(app.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 2, failureThresholdPct: 20 }, "user:t");
    await until("paused", async () => (await batchRow(app, batchId)).state === "paused");
    // Three failures of three finished (the minimum sample): 100% > 20%. The fourth job was running and goes on.
    const states = (await jobStates(app, batchId));
    expect(states.filter((j) => j.state === "failed").map((j) => j.machineId)).toEqual(ms.slice(0, 3).map((m) => m.id));
    expect(states.filter((j) => j.state === "running").map((j) => j.machineId)).toEqual([ms[3]!.id]);
    expect(states.filter((j) => j.state === "queued")).toHaveLength(2);
    const alertEvent = (await app.domain.store.db.select().from(app.domain.store.t.events).where(and(eq(app.domain.store.t.events.kind, "batch.paused")))).find((e) => e.payload?.batchId === batchId);
    expect(alertEvent?.message).toMatch(/3 of 3 finished jobs failed, above the 20% threshold; paused with 2 queued/);
    expect(published).toContainEqual(expect.objectContaining({ type: "batch.alert", batchId, state: "paused" }));
    await until("webhook POST", () => hook.received.length === 1);
    expect(hook.received[0]!.body).toMatchObject({
      event: "batch.paused",
      batch: { id: batchId, kind: "inspect", state: "paused", thresholdPct: 20, counts: { total: 6, failed: 3, running: 1, queued: 2 } },
      url: `https://rackhand.example/batches/${batchId}`,
    });
    await until("webhook recorded", async () => (await getBatch(storeOf(app.domain), batchId)).alert?.webhook.state === "sent");

    // Paused: the running job finishes, nothing new starts.
    await runAgent(app, ms[3]!.mac);
    await until("job 4 done", async () => (await jobStates(app, batchId)).find((j) => j.machineId === ms[3]!.id)?.state === "succeeded");
    await new Promise((r) => setTimeout(r, 200));
    expect((await jobStates(app, batchId)).filter((j) => j.state === "queued")).toHaveLength(2);
    expect((await running(app, batchId))).toEqual([]);

    await resumeBatch(app.domain, batchId, "user:t");
    for (const m of ms.slice(4)) {
      await until(`${m.id} running`, async () => (await running(app, batchId)).includes(m.id));
      await runAgent(app, m.mac);
    }
    await until("finished", async () => (await batchRow(app, batchId)).state === "finished");
    expect((await getBatch(storeOf(app.domain), batchId)).counts).toMatchObject({ succeeded: 3, failed: 3, queued: 0 });
    expect(hook.received).toHaveLength(1);
    for (const m of ms) rec.failing.delete(m.id);
  });

  it("records a webhook that keeps failing, without holding up the batch", async () => {
    hook.setStatus(500);
    hook.received.length = 0;
    const ms = await manageable(app, 4);
    for (const m of ms) rec.failing.add(m.id);
    const { batchId } = await startBatch(app.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 0 }, "user:t");
    await until("paused", async () => (await batchRow(app, batchId)).state === "paused");
    // Threshold 0: the first failure pauses.
    expect((await getBatch(storeOf(app.domain), batchId)).counts).toMatchObject({ failed: 1, queued: 3 });
    await until("webhook failed", async () => (await getBatch(storeOf(app.domain), batchId)).alert?.webhook.state === "failed");
    expect((await getBatch(storeOf(app.domain), batchId)).alert?.webhook).toEqual({ state: "failed", attempts: 2, error: "HTTP 500" });
    expect(hook.received).toHaveLength(2);
    expect((await app.domain.store.db.select().from(app.domain.store.t.events).where(eq(app.domain.store.t.events.kind, "batch.webhook_failed"))).at(-1)?.message).toMatch(/after 2 attempts: HTTP 500/);
    await abortBatch(app.domain, batchId, false, "user:t");
    hook.setStatus(200);
    await setBatchSettings(app.domain, { webhookUrl: null }, "user:admin");
    for (const m of ms) rec.failing.delete(m.id);
  });
});

describe("abort", () => {
  it("cancels queued jobs and lets the running one finish; or cancels running jobs too, powering nothing off", async () => {
    const ms = await manageable(app, 4);
    const { batchId } = await startBatch(app.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 100 }, "user:t");
    await until("first running", async () => (await running(app, batchId)).length === 1);
    await abortBatch(app.domain, batchId, false, "user:t");
    expect((await batchRow(app, batchId))).toMatchObject({ state: "aborted", finishedAt: null });
    expect((await jobStates(app, batchId)).map((j) => j.state)).toEqual(["running", "cancelled", "cancelled", "cancelled"]);
    // Queued jobs never moved their machines.
    expect((await app.domain.store.db.select().from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, ms[1]!.id)))[0]!.state).toBe("manageable");
    await runAgent(app, ms[0]!.mac);
    await until("closed", async () => (await batchRow(app, batchId)).finishedAt !== null);
    expect((await jobStates(app, batchId)).map((j) => j.state)).toEqual(["succeeded", "cancelled", "cancelled", "cancelled"]);

    const more = await manageable(app, 3);
    const b2 = (await startBatch(app.domain, { selection: { ids: more.map((m) => m.id) }, kind: "inspect", concurrency: 2, failureThresholdPct: 100 }, "user:t")).batchId;
    await until("two running", async () => (await running(app, b2)).length === 2);
    await until("power cycled", () => more.slice(0, 2).every((m) => rec.calls.includes(`powerCycle(${m.id})`)));
    rec.calls.length = 0;
    await abortBatch(app.domain, b2, true, "user:t");
    await until("closed", async () => (await batchRow(app, b2)).finishedAt !== null);
    expect((await jobStates(app, b2)).map((j) => j.state)).toEqual(["cancelled", "cancelled", "cancelled"]);
    expect((await app.domain.store.db.select().from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, more[0]!.id)))[0]!.state).toBe("inspect_failed");
    expect(rec.calls.filter((c) => c.startsWith("power"))).toEqual([]);
    await expect(resumeBatch(app.domain, b2, "user:t")).rejects.toThrow(/aborted, not paused/);
  });

  it("fails a queued job whose machine can no longer move when its turn comes, with the reason", async () => {
    const ms = await manageable(app, 2);
    const { batchId } = await startBatch(app.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 100 }, "user:t");
    await until("first running", async () => (await running(app, batchId)).length === 1);
    await setMaintenance(app.domain, ms[1]!.id, true, "rack work", "user:t");
    await runAgent(app, ms[0]!.mac);
    await until("finished", async () => (await batchRow(app, batchId)).state === "finished");
    const second = (await getBatch(storeOf(app.domain), batchId)).machines.find((m) => m.machineId === ms[1]!.id)!;
    expect(second).toMatchObject({ jobState: "failed", machineState: "manageable", error: expect.stringMatching(/^not started: .*in maintenance/) });
  });
});

describe("restart", () => {
  it("resumes an open batch from the database after the server stops", async () => {
    const dir = tempDir();
    let a = await boot(dir);
    const ms = await manageable(a, 3);
    const { batchId } = await startBatch(a.domain, { selection: { ids: ms.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 20 }, "user:t");
    await until("first running", async () => (await running(a, batchId)).length === 1);
    await a.close();
    a = await boot(dir);
    try {
      for (const m of ms) {
        await until(`${m.id} running`, async () => (await running(a, batchId)).includes(m.id));
        await runAgent(a, m.mac);
      }
      await until("finished", async () => (await batchRow(a, batchId)).state === "finished");
      expect((await jobStates(a, batchId)).map((j) => j.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
    } finally {
      await a.close();
    }
  });
});

describe("power batches", () => {
  /** Machines with a BMC (the fake driver; the recording ports stand in for it), in the given lifecycle state. */
  async function withBmc(n: number, state: "manageable" | "available") {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = ++seq;
      const mac = `52:54:00:89:${(k >> 8).toString(16).padStart(2, "0")}:${(k & 255).toString(16).padStart(2, "0")}`;
      const bmc = { address: `10.250.${k >> 8}.${k & 255}`, port: 623, username: "root", password: "pw", driver: "fake" as const, privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
      const { id } = await enrollMachine(app.domain, { name: `pwr-${String(k).padStart(3, "0")}`, bootMac: mac, uHeight: 1, bmc }, "test");
      await transition(app.domain, id, "manage", { actor: "test" });
      if (state === "available") await transition(app.domain, id, "provide", { actor: "test" });
      out.push(id);
    }
    return out;
  }
  const machineStates = async (ids: number[]) => Promise.all(ids.map(async (id) => (await app.domain.store.db.select({ s: app.domain.store.t.machines.state }).from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, id)))[0]!.s));

  it("cycles power under the concurrency limit, skips machines without a BMC, and leaves the lifecycle alone", async () => {
    const ids = await withBmc(4, "available");
    const [noBmc] = await manageable(app, 1, "nobmc", true);
    const selection = { ids: [...ids, noBmc!.id] };
    // The typed count is the number that acts (4), not the number selected (5).
    await expect(startBatch(app.domain, { selection, kind: "power_cycle", concurrency: 2, failureThresholdPct: 20, confirmCount: 5 }, "user:t")).rejects.toThrow(
      /Type the number of machines that will act \(4\)/,
    );
    rec.calls.length = 0;
    let max = 0;
    let batchId = -1;
    const off = app.domain.bus.subscribe((e) => {
      if (e.type === "job.changed" && e.batchId === batchId) void running(app, batchId).then((r) => (max = Math.max(max, r.length)), () => {}); // a read racing the test's end counts nothing
    });
    const created = await startBatch(app.domain, { selection, kind: "power_cycle", concurrency: 2, failureThresholdPct: 20, confirmCount: 4 }, "user:t");
    batchId = created.batchId;
    expect(created).toMatchObject({ queued: 4, skipped: [{ machineId: noBmc!.id, error: "has no BMC to switch its power" }] });
    await until("batch finished", async () => (await batchRow(app, batchId)).state === "finished");
    off();
    expect(max).toBeLessThanOrEqual(2);
    expect(rec.calls.filter((c) => c.startsWith("powerCycle")).sort()).toEqual(ids.map((id) => `powerCycle(${id})`).sort());
    expect(rec.calls.some((c) => !c.startsWith("powerCycle"))).toBe(false);
    const detail = await getBatch(storeOf(app.domain), batchId);
    expect(detail.counts).toMatchObject({ total: 4, succeeded: 4, failed: 0 });
    expect(detail.machines.every((m) => m.machineState === "available" && m.jobState === "succeeded")).toBe(true);
    expect((await machineStates(ids))).toEqual(Array(4).fill("available"));
  });

  it("pauses and alerts when power fails on too many machines; each machine keeps its error, none changes state", async () => {
    const ids = await withBmc(5, "manageable");
    for (const id of ids.slice(0, 3)) rec.powerFailing.add(id);
    const { batchId } = await startBatch(app.domain, { selection: { ids }, kind: "power_off", concurrency: 1, failureThresholdPct: 50, confirmCount: 5 }, "user:t");
    await until("paused", async () => (await batchRow(app, batchId)).state === "paused");
    const detail = await getBatch(storeOf(app.domain), batchId);
    expect(detail.counts).toMatchObject({ failed: 3, queued: 2 });
    expect(detail.alert?.message).toMatch(/3 of 3 finished jobs failed, above the 50% threshold; paused with 2 queued/);
    expect(detail.machines.filter((m) => m.jobState === "failed").map((m) => m.error)).toEqual(
      ids.slice(0, 3).map((id) => `power_off: BMC of machine ${id} refuses power (test)`),
    );
    expect(published).toContainEqual(expect.objectContaining({ type: "batch.alert", batchId, state: "paused" }));
    expect((await machineStates(ids))).toEqual(Array(5).fill("manageable"));
    for (const id of ids) rec.powerFailing.delete(id);
    await resumeBatch(app.domain, batchId, "user:t");
    await until("finished", async () => (await batchRow(app, batchId)).state === "finished");
    expect((await getBatch(storeOf(app.domain), batchId)).counts).toMatchObject({ succeeded: 2, failed: 3 });
  });
});
