import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { performAction } from "../operator/lifecycle-actions";
import { currentAgentNonce } from "../netboot/agent-nonce";
import { storeNetbootSettings } from "../netboot/settings";
import type { MachinePorts } from "./ports";
import { until } from "../testing/until";
import { testDatabaseEnv } from "../testing/test-store";

/** Ports that record every call; failures can be queued per method. */
function recordingPorts() {
  const calls: string[] = [];
  const failures = new Map<string, unknown[]>();
  const port =
    (name: string) =>
    async (...args: unknown[]) => {
      calls.push(`${name}(${args.join(",")})`);
      const queued = failures.get(name);
      if (queued?.length) throw queued.shift();
    };
  const ports: MachinePorts = {
    setBootTarget: port("setBootTarget"),
    setBootDevice: port("setBootDevice"),
    powerOn: port("powerOn"),
    powerCycle: port("powerCycle"),
    powerOff: port("powerOff"),
  };
  return { ports, calls, failNext: (name: string, err: unknown) => failures.set(name, [...(failures.get(name) ?? []), err]) };
}

let app: App;
let dir: string;
const rec = recordingPorts();
let seq = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-orch-"));
  const config = loadConfig({ ...(await testDatabaseEnv()), RACKHAND_DATA_DIR: dir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "admin-password-1", NODE_ENV: "test" }, { ui: false });
  // random 0: backoff is exactly half its ceiling (1 s for a first retry), so tests wait a known time.
  app = await startApp(config, silentLogger, { ports: rec.ports, orchestrator: { tickMs: 50, random: () => 0 } });
});
afterAll(async () => {
  await app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});


async function agent(p: string, body: unknown, token?: string, raw?: { body: string; type?: string }) {
  const res = await fetch(`${app.url}/api/agent/v1${p}`, {
    method: "POST",
    headers: { "content-type": raw?.type ?? "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: raw ? raw.body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) };
}

/** An available machine with an image profile; returns its id and boot MAC. */
async function availableMachine() {
  const n = ++seq;
  const mac = `52:54:00:77:00:${n.toString(16).padStart(2, "0")}`;
  const d = app.domain;
  const profile = (await d.store.db
    .insert(d.store.t.osProfiles)
    .values({ name: `img-${n}`, kind: "image", osFamily: "debian", imageUrl: "http://127.0.0.1/x.raw.gz", imageSha256: "ab".repeat(32), createdAt: new Date(), updatedAt: new Date() })
    .returning())[0]!;
  const { id } = await enrollMachine(d, { name: `orch-${n}`, bootMac: mac, uHeight: 1, osProfileId: profile.id }, "test");
  await transition(d, id, "manage", { actor: "test" });
  await transition(d, id, "provide", { actor: "test" });
  return { id, mac };
}

/** Long-poll the heartbeat until the job hands out a step. */
async function nextStep(token: string): Promise<{ id: number; name: string; attempt: number }> {
  return until("an agent step", async () => (await agent("/heartbeat", { waitS: 2 }, token)).body.steps[0]);
}

/** The nonce in the machine's agent boot entry (rackhand.nonce=), as the agent reads it from /proc/cmdline. */
const nonceOf = async (machineId: number) => (await currentAgentNonce(app.domain, machineId)) ?? undefined;
const machineState = async (id: number) => (await app.domain.store.db.select().from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, id)))[0]!;
const jobOf = async (id: number) => (await app.domain.store.db.select().from(app.domain.store.t.jobs).where(eq(app.domain.store.t.jobs.id, id)))[0]!;

describe("an inspection through the agent protocol", () => {
  it("runs server steps, hands the agent its step, ingests logs idempotently and finishes the lifecycle", async () => {
    const { id, mac } = await availableMachine();
    rec.calls.length = 0;
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    expect((await machineState(id)).state).toBe("inspecting");
    await until("power cycle", () => rec.calls.includes(`powerCycle(${id})`));
    // Group 0 ran both of its steps (in parallel) before group 1's power cycle.
    expect(rec.calls.slice(0, 3).sort()).toEqual([`powerCycle(${id})`, `setBootDevice(${id},pxe,false)`, `setBootTarget(${id},agent)`].sort());
    expect(rec.calls[2]).toBe(`powerCycle(${id})`);

    const look = await agent("/lookup", { nonce: await nonceOf(id), macs: ["00:00:00:00:00:01", mac.toUpperCase().replaceAll(":", "-")], inventory: { cpus: 4 } });
    expect(look.status).toBe(200);
    expect(look.body).toMatchObject({ machineId: id, jobId });
    const token = look.body.token as string;

    const hb = await agent("/heartbeat", { waitS: 5 }, token);
    expect(hb.status).toBe(200);
    expect(hb.body.steps).toEqual([expect.objectContaining({ name: "inventory", attempt: 1 })]);
    const stepId = hb.body.steps[0].id as number;

    const lines = (from: number, to: number) => ({ lines: Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, ts: Date.now(), text: `line ${from + i}` })) });
    expect((await agent(`/steps/${stepId}/logs`, lines(0, 2), token)).body).toEqual({ accepted: 3 });
    // A resend after a lost answer: only the new line is taken.
    expect((await agent(`/steps/${stepId}/logs`, lines(1, 3), token)).body).toEqual({ accepted: 1 });
    const stored = (await app.domain.store.db.select().from(app.domain.store.t.logLines).where(eq(app.domain.store.t.logLines.jobId, jobId)));
    expect(stored.map((l) => l.seq)).toEqual([0, 1, 2, 3]);

    const done = await agent(`/steps/${stepId}/result`, { attempt: 1, ok: true, result: { cpus: 8, memoryMiB: 2048 } }, token);
    expect(done.status).toBe(200);
    await until("job succeeded", async () => (await jobOf(jobId)).state === "succeeded");
    expect((await machineState(id))).toMatchObject({ state: "available", inventory: { cpus: 8, memoryMiB: 2048 } });
    expect(rec.calls).toEqual(expect.arrayContaining([`setBootTarget(${id},disk)`, `setBootDevice(${id},disk,true)`, `powerOff(${id})`]));
    // The job is over: its token no longer works.
    expect((await agent("/heartbeat", { waitS: 0 }, token)).status).toBe(401);
  });
});

describe("agent API safety", () => {
  it("takes inventory from a job's first lookup only, and records a second lookup as an event", async () => {
    const { id, mac } = await availableMachine();
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    const first = await until("first lookup", async () => {
      const r = await agent("/lookup", { nonce: await nonceOf(id), macs: [mac], inventory: { cpus: 4 } });
      return r.status === 200 ? r : null;
    });
    expect(first.body).toMatchObject({ machineId: id, jobId });
    expect((await machineState(id)).inventory).toEqual({ cpus: 4 });
    const second = await agent("/lookup", { nonce: await nonceOf(id), macs: [mac], inventory: { cpus: 9999, forged: true } });
    expect(second.status).toBe(200);
    expect((await machineState(id)).inventory).toEqual({ cpus: 4 });
    // The first token is revoked by the second lookup.
    expect((await agent("/heartbeat", { waitS: 0 }, first.body.token)).status).toBe(401);
    const flagged = (await app.domain.store.db.select().from(app.domain.store.t.events).where(and(eq(app.domain.store.t.events.machineId, id), eq(app.domain.store.t.events.kind, "agent.relookup"))));
    expect(flagged).toHaveLength(1);
    expect(flagged[0]!.payload).toMatchObject({ jobId, inventoryIgnored: true });
  });

  it("gives no token to a lookup without the boot entry's nonce or with a wrong one; the rendered nonce works", async () => {
    // Mode external: Rackhand writes the boot tree and runs no DHCP server (nothing on the network is touched).
    await storeNetbootSettings(
      app.domain,
      { mode: "external", interface: "rhnonce0", serverAddress: "10.0.0.1", rangeStart: "10.0.200.1", rangeEnd: "10.0.200.99", netmask: "255.255.0.0", httpBaseUrl: "http://10.0.0.1:3000" },
      "test",
    );
    const a = await availableMachine();
    const b = await availableMachine();
    await performAction(app.domain, a.id, "inspect", "user:test");
    await performAction(app.domain, b.id, "inspect", "user:test");
    const refusals = async () => (await app.domain.store.db.select().from(app.domain.store.t.events).where(and(eq(app.domain.store.t.events.machineId, a.id), eq(app.domain.store.t.events.kind, "agent.lookup_refused"))));
    // The MAC alone (every viewer sees it) is no credential.
    const bare = await agent("/lookup", { macs: [a.mac], inventory: { forged: true } });
    expect(bare).toMatchObject({ status: 401, body: { error: expect.stringMatching(/^lookup refused: no nonce/) } });
    expect(bare.body.token).toBeUndefined();
    // Well-formed but not this machine's current one: b's nonce, and one of a's made-up sessions.
    for (const nonce of [(await nonceOf(b.id))!, "0".repeat(64)]) {
      const wrong = await agent("/lookup", { macs: [a.mac], nonce });
      expect(wrong).toMatchObject({ status: 401, body: { error: expect.stringMatching(/not the one of this machine's current boot/) } });
      expect(wrong.body.token).toBeUndefined();
    }
    // Recorded as an event (once per machine per minute: the endpoint is unauthenticated).
    expect((await refusals())).toHaveLength(1);
    expect((await refusals())[0]!.message).toMatch(/refused: no nonce/);
    // Hostile values are refused by the schema with a clear message, before any lookup.
    const good = (await nonceOf(a.id))!;
    for (const nonce of [`${good}\n`, `${good.slice(0, 63)}\n`, `${good.slice(0, 63)}\0`, `${good}\r`, good.toUpperCase(), "g".repeat(64), good + good, "f".repeat(100_000), "$(reboot)", "", "é".repeat(64), 42, null, [good]]) {
      const r = await agent("/lookup", { macs: [a.mac], nonce });
      expect(r.status, JSON.stringify(nonce).slice(0, 80)).toBe(r.status === 413 ? 413 : 400);
      if (r.status === 400) expect(r.body.error).toMatch(/^nonce: /);
      expect(r.body.token).toBeUndefined();
    }
    expect((await machineState(a.id)).inventory).toBeNull();
    // The nonce the agent reads from its kernel command line: the one rendered in this machine's boot entries.
    const hy = a.mac.replaceAll(":", "-");
    const tftp = path.join(dir, "netboot", "tftp");
    const entries = [`pxelinux.cfg/01-${hy}`, `ipxe/${hy}.ipxe`, `grub/grub.cfg-01-${hy}`].map((f) => path.join(tftp, f));
    const rendered = await until("a's agent boot entries with a nonce", () => {
      const found = entries.map((f) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").match(/ rackhand\.nonce=([0-9a-f]{64})\b/)?.[1] : undefined));
      return found.every((n) => n && n === found[0]) && found[0];
    });
    expect(rendered).toBe(good);
    const ok = await agent("/lookup", { macs: [a.mac], nonce: rendered, inventory: { cpus: 2 } });
    expect(ok).toMatchObject({ status: 200, body: { machineId: a.id, token: expect.any(String) } });
    expect((await machineState(a.id)).inventory).toEqual({ cpus: 2 });
    // A second lookup for the same boot still works (the agent restarted) and is flagged, as before.
    expect((await agent("/lookup", { macs: [a.mac], nonce: rendered })).status).toBe(200);
    expect((await app.domain.store.db.select().from(app.domain.store.t.events).where(and(eq(app.domain.store.t.events.machineId, a.id), eq(app.domain.store.t.events.kind, "agent.relookup"))))).toHaveLength(1);
    // Once the machine leaves its netboot state, that boot's nonce is worth nothing.
    await performAction(app.domain, a.id, "abort", "user:test");
    await performAction(app.domain, b.id, "abort", "user:test");
    expect((await agent("/lookup", { macs: [a.mac], nonce: rendered })).status).toBe(401);
  });

  it("refuses calls without a token, with a wrong one, or with another job's token", async () => {
    const a = await availableMachine();
    const b = await availableMachine();
    await performAction(app.domain, a.id, "inspect", "user:test");
    await performAction(app.domain, b.id, "inspect", "user:test");
    const ta = (await agent("/lookup", { macs: [a.mac], nonce: await nonceOf(a.id) })).body.token;
    const tb = (await agent("/lookup", { macs: [b.mac], nonce: await nonceOf(b.id) })).body.token;
    expect((await agent("/heartbeat", { waitS: 0 })).status).toBe(401);
    expect((await agent("/heartbeat", { waitS: 0 }, "not-a-token")).status).toBe(401);
    const stepA = await nextStep(ta);
    expect((await agent(`/steps/${stepA.id}/result`, { attempt: 1, ok: true }, tb)).status).toBe(401);
    expect((await agent(`/steps/${stepA.id}/logs`, { lines: [{ seq: 0, ts: 1, text: "x" }] }, tb)).status).toBe(401);
  });

  it("answers malformed bodies with a 4xx and a clear message, writing nothing", async () => {
    expect(await agent("/lookup", null, undefined, { body: "{not json" })).toMatchObject({ status: 400, body: { error: "body is not valid JSON" } });
    expect((await agent("/lookup", null, undefined, { body: "{}", type: "text/plain" })).status).toBe(415);
    expect(await agent("/lookup", { macs: [] })).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^macs: /) } });
    expect((await agent("/lookup", { macs: ["52:54:00:ff:ff:ff"] })).status).toBe(404);
    const big = JSON.stringify({ macs: ["a"], inventory: { x: "y".repeat(300_000) } });
    expect((await agent("/lookup", null, undefined, { body: big })).status).toBe(413);
    const { id, mac } = await availableMachine();
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    const token = (await agent("/lookup", { nonce: await nonceOf(id), macs: [mac] })).body.token;
    const step = await nextStep(token);
    const bad = await agent(`/steps/${step.id}/logs`, { lines: [{ seq: 0, ts: 1, text: "ok" }, { seq: -1, ts: 1, text: "bad" }] }, token);
    expect(bad).toMatchObject({ status: 400, body: { error: expect.stringMatching(/lines\.1\.seq/) } });
    expect((await app.domain.store.db.select().from(app.domain.store.t.logLines).where(eq(app.domain.store.t.logLines.jobId, jobId)))).toEqual([]);
    expect((await agent("/nope", {})).status).toBe(404);
  });
});

describe("retries, failures and cancellation", () => {
  it("retries a transient agent failure and succeeds on the next attempt; a stale report is refused", async () => {
    const { id, mac } = await availableMachine();
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    const token = (await agent("/lookup", { nonce: await nonceOf(id), macs: [mac] })).body.token;
    const first = await nextStep(token);
    expect((await agent(`/steps/${first.id}/result`, { attempt: 1, ok: false, error: { transient: true, message: "disk busy" } }, token)).status).toBe(200);
    expect((await app.domain.store.db.select().from(app.domain.store.t.steps).where(eq(app.domain.store.t.steps.id, first.id)))[0]).toMatchObject({ state: "pending", error: "disk busy" });
    const again = await agent("/heartbeat", { waitS: 5 }, token);
    expect(again.body.steps).toEqual([expect.objectContaining({ id: first.id, attempt: 2 })]);
    expect((await agent(`/steps/${first.id}/result`, { attempt: 1, ok: true }, token)).status).toBe(409);
    expect((await agent(`/steps/${first.id}/result`, { attempt: 2, ok: true }, token)).status).toBe(200);
    await until("job succeeded", async () => (await jobOf(jobId)).state === "succeeded");
  });

  it("retries a transient server-step failure (BMC unreachable) by itself", async () => {
    const { id } = await availableMachine();
    rec.failNext("setBootDevice", new AppError("BMC_UNREACHABLE", "BMC 10.0.0.1 does not answer"));
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    await until("second attempt", async () =>
      (await app.domain.store.db.select().from(app.domain.store.t.steps).where(and(eq(app.domain.store.t.steps.jobId, jobId), eq(app.domain.store.t.steps.name, "set_boot_device"))))[0]?.state === "succeeded",
    );
    expect((await app.domain.store.db.select().from(app.domain.store.t.steps).where(and(eq(app.domain.store.t.steps.jobId, jobId), eq(app.domain.store.t.steps.name, "set_boot_device"))))[0]!.attempt).toBe(2);
    await performAction(app.domain, id, "abort", "user:test");
  });

  it("fails the job and the machine on a permanent failure, with the message", async () => {
    const { id, mac } = await availableMachine();
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    const token = (await agent("/lookup", { nonce: await nonceOf(id), macs: [mac] })).body.token;
    const step = await nextStep(token);
    await agent(`/steps/${step.id}/result`, { attempt: 1, ok: false, error: { transient: false, message: "no disks found" } }, token);
    await until("job failed", async () => (await jobOf(jobId)).state === "failed");
    expect((await jobOf(jobId)).error).toBe("inventory: no disks found");
    expect((await machineState(id))).toMatchObject({ state: "inspect_failed", lastError: "inventory: no disks found" });
    // Retry starts a new job of the same kind.
    const retry = await performAction(app.domain, id, "retry", "user:test");
    expect(retry).toMatchObject({ from: "inspect_failed", to: "inspecting" });
    expect((await jobOf(retry.jobId!)).kind).toBe("inspect");
    await performAction(app.domain, id, "abort", "user:test");
  });

  it("cancels a job: the agent's long-poll ends at once and the machine is aborted, nothing powered off", async () => {
    const { id, mac } = await availableMachine();
    const jobId = (await performAction(app.domain, id, "inspect", "user:test")).jobId!;
    const token = (await agent("/lookup", { nonce: await nonceOf(id), macs: [mac] })).body.token;
    const s = await nextStep(token);
    expect(s).toBeTruthy();
    rec.calls.length = 0;
    const started = Date.now();
    const poll = agent("/heartbeat", { waitS: 20 }, token);
    await new Promise((r) => setTimeout(r, 100));
    await performAction(app.domain, id, "abort", "user:test");
    const r = await poll;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.body).toMatchObject({ done: true, jobState: "cancelled", steps: [] });
    // The job's token died with it.
    expect((await agent("/heartbeat", { waitS: 0 }, token)).status).toBe(401);
    expect((await jobOf(jobId)).state).toBe("cancelled");
    expect((await machineState(id)).state).toBe("inspect_failed");
    expect(rec.calls.filter((c) => c.startsWith("power"))).toEqual([]);
  });

  it("allows one active job per machine", async () => {
    const { id } = await availableMachine();
    await performAction(app.domain, id, "inspect", "user:test");
    await expect(performAction(app.domain, id, "abort", "user:test")).resolves.toBeDefined();
    const jobId = (await performAction(app.domain, id, "retry", "user:test")).jobId!;
    await expect(performAction(app.domain, id, "inspect", "user:test")).rejects.toThrow(/not allowed|already runs/);
    await performAction(app.domain, id, "abort", "user:test");
    expect((await jobOf(jobId)).state).toBe("cancelled");
  });
});
