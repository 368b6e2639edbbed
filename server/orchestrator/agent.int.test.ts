import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ApiClient, ApiError, heartbeatResponse, lookupResponse } from "../../agent/client";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { performAction } from "../operator/lifecycle-actions";
import type { MachinePorts } from "./ports";
import {
  agentNonceArgs,
  buildAgentBundle,
  makeDisk,
  makeImage,
  serveImages,
  sha256OfPrefix,
  spawnAgent,
  until,
  type AgentProcess,
  type ImageServer,
  type TestImage,
} from "./testing/agent-harness";
import { testDatabaseEnv } from "../testing/test-store";

// The agent as a real process (the bundle that ships), over real HTTP, against the app in-process with
// recording out-of-band ports; images from a tiny HTTP server; disks are sparse files.
const noopPorts: MachinePorts = {
  setBootTarget: async () => undefined,
  setBootDevice: async () => undefined,
  powerOn: async () => undefined,
  powerCycle: async () => undefined,
  powerOff: async () => undefined,
};

let app: App;
let dir: string;
let bundle: string;
let image: TestImage;
let images: ImageServer;
const agents: AgentProcess[] = [];
let n = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-agent-"));
  bundle = await buildAgentBundle(dir);
  image = makeImage(dir, 4);
  images = await serveImages(image.files);
  const config = loadConfig({ ...(await testDatabaseEnv()), RACKHAND_DATA_DIR: dir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "admin-password-1", NODE_ENV: "test" }, { ui: false });
  // random 0: a transient failure is retried after exactly half the first backoff (1 s).
  app = await startApp(config, silentLogger, { ports: noopPorts, orchestrator: { tickMs: 50, random: () => 0 } });
});
afterAll(async () => {
  for (const a of agents) a.child.kill("SIGKILL");
  await app?.close();
  await images?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An available machine whose OS profile is the test image in `format`, with `sha256` as its checksum. */
async function machineWithImage(file: string, format: string, sha256 = image.sha256) {
  const i = ++n;
  const mac = `52:54:00:aa:00:${i.toString(16).padStart(2, "0")}`;
  const d = app.domain;
  const profile = (await d.store.db
    .insert(d.store.t.osProfiles)
    .values({ name: `agent-img-${i}`, kind: "image", osFamily: "debian", imageUrl: `${images.url}/${file}`, imageSha256: sha256, imageFormat: format, createdAt: new Date(), updatedAt: new Date() })
    .returning())[0]!;
  const { id } = await enrollMachine(d, { name: `agent-${i}`, bootMac: mac, uHeight: 1, osProfileId: profile.id }, "test");
  await transition(d, id, "manage", { actor: "test" });
  await transition(d, id, "provide", { actor: "test" });
  return { id, mac, disk: makeDisk(dir, `disk-${i}.img`, 16) };
}

async function deploy(m: { id: number; mac: string; disk: string }, extra: string[] = []) {
  const jobId = (await performAction(app.domain, m.id, "deploy", "user:test")).jobId!;
  const agent = spawnAgent(bundle, app.url, m.mac, m.disk, [...extra, ...(await agentNonceArgs(app.domain, m.id))]);
  agents.push(agent);
  return { jobId, agent };
}

const nonceOf = async (machineId: number) => (await agentNonceArgs(app.domain, machineId))[1];
const jobOf = async (id: number) => (await app.domain.store.db.select().from(app.domain.store.t.jobs).where(eq(app.domain.store.t.jobs.id, id)))[0]!;
const stepsOf = async (jobId: number) => (await app.domain.store.db.select().from(app.domain.store.t.steps).where(eq(app.domain.store.t.steps.jobId, jobId)).orderBy(asc(app.domain.store.t.steps.group), asc(app.domain.store.t.steps.id)));
const linesOf = async (jobId: number) => (await app.domain.store.db.select().from(app.domain.store.t.logLines).where(eq(app.domain.store.t.logLines.jobId, jobId)).orderBy(asc(app.domain.store.t.logLines.seq)));
const finished = (jobId: number) => async () => ["succeeded", "failed", "cancelled"].includes((await jobOf(jobId)).state);

describe("the agent deploys an image onto a file-backed disk", () => {
  for (const [file, format] of [["disk.raw.gz", "raw.gz"], ["disk.raw.xz", "raw.xz"]] as const) {
    it(`writes ${format}: verified bytes, every step succeeded, contiguous log seqs`, async () => {
      const m = await machineWithImage(file, format);
      const { jobId, agent } = await deploy(m);
      await until("the job to finish", finished(jobId), 20_000);
      expect(await agent.exited, agent.output()).toBe(0);
      expect((await jobOf(jobId)), agent.output()).toMatchObject({ state: "succeeded", error: null });
      expect((await app.domain.store.db.select().from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, m.id)))[0]!.state).toBe("deployed");
      // Every step ran once and succeeded, server and agent ones alike.
      const all = (await stepsOf(jobId));
      expect(all.map((s) => [s.name, s.state, s.attempt])).toEqual(all.map((s) => [s.name, "succeeded", 1]));
      expect(all.filter((s) => s.runner === "agent").map((s) => s.name)).toEqual(["inventory", "wipe", "write_image", "configure_network"]);
      // The bytes on the disk are the image; the file was not truncated; wipe zeroed its last MiB.
      expect(sha256OfPrefix(m.disk, image.sizeBytes)).toBe(image.sha256);
      expect(fs.statSync(m.disk).size).toBe(16 << 20);
      const write = all.find((s) => s.name === "write_image")!;
      expect(write.result).toMatchObject({ sha256: image.sha256, bytes: image.sizeBytes, format, verified: true });
      expect(all.find((s) => s.name === "configure_network")!.result).toMatchObject({ skipped: expect.any(String) });
      expect(all.find((s) => s.name === "inventory")!.result).toMatchObject({ cpus: expect.any(Number), disks: expect.any(Array) });
      const lines = (await linesOf(jobId));
      expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
      expect(lines.some((l) => l.stepId === write.id && /^verified: \d+ bytes, sha256 [0-9a-f]{64} \(as expected\)/.test(l.text))).toBe(true);
      expect(new Set(lines.map((l) => l.stepId))).toEqual(new Set(all.filter((s) => s.runner === "agent").map((s) => s.id)));
    });
  }

  it("retries a transient failure (the image server answers 503 once) and succeeds", async () => {
    const m = await machineWithImage("disk.raw.gz", "raw.gz");
    // The deploy's first GET of the image is the wipe's firmware check (the image's first MiB), before the disk
    // is touched: the 503 makes that step retry; write_image's own GET then succeeds at once.
    images.failNext("disk.raw.gz", 503);
    const { jobId, agent } = await deploy(m);
    await until("the job to finish", finished(jobId), 20_000);
    expect((await jobOf(jobId)).state, agent.output()).toBe("succeeded");
    const wipe = (await stepsOf(jobId)).find((s) => s.name === "wipe")!;
    expect(wipe).toMatchObject({ state: "succeeded", attempt: 2, error: null });
    expect((await linesOf(jobId)).some((l) => l.stepId === wipe.id && /failed \(transient\): GET .*HTTP 503/.test(l.text))).toBe(true);
    expect((await linesOf(jobId)).some((l) => l.stepId === wipe.id && /^image check: MBR, 1 partition, no EFI System Partition, BIOS boot code in the MBR; this machine booted with BIOS firmware/.test(l.text))).toBe(true);
    expect((await stepsOf(jobId)).find((s) => s.name === "write_image")).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(sha256OfPrefix(m.disk, image.sizeBytes)).toBe(image.sha256);
  });

  it("fails the job on a permanent failure (wrong sha256), with the message, without retrying", async () => {
    const wrong = "0".repeat(64);
    const m = await machineWithImage("disk.raw.gz", "raw.gz", wrong);
    const { jobId, agent } = await deploy(m);
    await until("the job to finish", finished(jobId), 20_000);
    expect(await agent.exited).toBe(0);
    const job = (await jobOf(jobId));
    expect(job.state).toBe("failed");
    expect(job.error).toBe(`write_image: sha256 mismatch: the image is ${image.sha256}, expected ${wrong}`);
    expect((await app.domain.store.db.select().from(app.domain.store.t.machines).where(eq(app.domain.store.t.machines.id, m.id)))[0]).toMatchObject({ state: "deploy_failed", lastError: job.error });
    expect((await stepsOf(jobId)).find((s) => s.name === "write_image")).toMatchObject({ state: "failed", attempt: 1 });
    const lines = (await linesOf(jobId));
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
  });

  it("fails a BIOS-only image on a UEFI machine before anything is written, saying why", async () => {
    const m = await machineWithImage("disk.raw.gz", "raw.gz");
    const before = fs.readFileSync(m.disk);
    // The agent takes an existing directory for /sys/firmware/efi: it booted with UEFI firmware.
    const efiDir = fs.mkdtempSync(path.join(dir, "efi-"));
    const { jobId, agent } = await deploy(m, ["--efi-dir", efiDir]);
    await until("the job to finish", finished(jobId), 20_000);
    expect(await agent.exited).toBe(0);
    const job = (await jobOf(jobId));
    expect(job.state).toBe("failed");
    expect(job.error).toBe(
      `wipe: the image ${images.url}/disk.raw.gz cannot boot on this machine: it booted with UEFI firmware and the image has no EFI System Partition (MBR, 1 partition, no EFI System Partition, BIOS boot code in the MBR); nothing was written`,
    );
    expect((await stepsOf(jobId)).find((s) => s.name === "wipe")).toMatchObject({ state: "failed", attempt: 1 });
    expect((await stepsOf(jobId)).find((s) => s.name === "write_image")).toMatchObject({ state: "cancelled" });
    // Not a byte of the disk changed: no wipe, no image.
    expect(fs.readFileSync(m.disk).equals(before)).toBe(true);
  });
});

describe("an agent that restarts mid-step", () => {
  it("gets the step again at once and continues the job's log seqs", async () => {
    const m = await machineWithImage("disk.raw.gz", "raw.gz");
    images.throttle(64 << 10, 25);
    try {
      // A long heartbeat: the dead agent's long-poll is surely still open on the server when the step is retried.
      const { jobId, agent } = await deploy(m, ["--wait-s", "20", "--progress-ms", "50"]);
      // Mid-write, with the heartbeat that followed the claim surely sent: progress lines have arrived.
      await until("write_image progress", async () => (await linesOf(jobId)).some((l) => l.text.startsWith("written ")), 10_000);
      agent.child.kill("SIGKILL");
      await agent.exited;
      const before = (await linesOf(jobId)).length;
      images.throttle(0, 0);
      const second = spawnAgent(bundle, app.url, m.mac, m.disk, await agentNonceArgs(app.domain, m.id));
      agents.push(second);
      await until("the job to finish", finished(jobId), 12_000);
      expect((await jobOf(jobId)).state, second.output()).toBe("succeeded");
      expect((await stepsOf(jobId)).find((s) => s.name === "write_image")).toMatchObject({ state: "succeeded", attempt: 2 });
      const lines = (await linesOf(jobId));
      expect(lines.length).toBeGreaterThan(before);
      expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
      expect(second.output()).toMatch(new RegExp(`log seq from ${before}\\b`));
      expect(sha256OfPrefix(m.disk, image.sizeBytes)).toBe(image.sha256);
    } finally {
      images.throttle(0, 0);
    }
  });
});

describe("agent calls need their own job's token", () => {
  it("gets 401 without a token, with another job's token and after the job ended; lookup resumes the seq", async () => {
    const a = await machineWithImage("disk.raw.gz", "raw.gz");
    const b = await machineWithImage("disk.raw.gz", "raw.gz");
    await performAction(app.domain, a.id, "deploy", "user:test");
    await performAction(app.domain, b.id, "deploy", "user:test");
    const client = new ApiClient(app.url, 300, () => undefined);
    const status = (p: Promise<unknown>) => p.then(() => 200, (e: unknown) => (e instanceof ApiError ? e.status : -1));

    expect(await status(client.post("/heartbeat", { waitS: 0 }, heartbeatResponse, 5000))).toBe(401);
    const la = await until("lookup a", async () => client.post("/lookup", { macs: [a.mac], nonce: await nonceOf(a.id) }, lookupResponse, 5000).catch(() => null));
    const lb = await until("lookup b", async () => client.post("/lookup", { macs: [b.mac], nonce: await nonceOf(b.id) }, lookupResponse, 5000).catch(() => null));
    expect(la.nextSeq).toBe(0);
    client.token = la.token;
    const stepA = await until("a's first step", async () => (await client.post("/heartbeat", { waitS: 2 }, heartbeatResponse, 5000)).steps[0]);
    const accepted = z.object({ accepted: z.number() });
    const lines = [0, 1, 2].map((seq) => ({ seq, ts: Date.now(), stream: "agent", text: `line ${seq}` }));
    expect(await client.post(`/steps/${stepA.id}/logs`, { lines }, accepted, 5000)).toEqual({ accepted: 3 });

    client.token = lb.token;
    expect(await status(client.post(`/steps/${stepA.id}/logs`, { lines }, accepted, 5000))).toBe(401);
    expect(await status(client.post(`/steps/${stepA.id}/result`, { attempt: 1, ok: true }, accepted, 5000))).toBe(401);
    client.token = "forged-token";
    expect(await status(client.post("/heartbeat", { waitS: 0 }, heartbeatResponse, 5000))).toBe(401);

    // A restarted agent looks up again: a new token (the old one stops working) and the seq to continue from.
    client.token = null;
    const again = await client.post("/lookup", { macs: [a.mac], nonce: await nonceOf(a.id) }, lookupResponse, 5000);
    expect(again).toMatchObject({ jobId: la.jobId, nextSeq: 3 });
    client.token = la.token;
    expect(await status(client.post("/heartbeat", { waitS: 0 }, heartbeatResponse, 5000))).toBe(401);

    // Cancelled: the job's token is revoked with it, like a finished job's (a poll already waiting is told "done").
    await performAction(app.domain, a.id, "abort", "user:test");
    await performAction(app.domain, b.id, "abort", "user:test");
    client.token = again.token;
    expect(await status(client.post("/heartbeat", { waitS: 0 }, heartbeatResponse, 5000))).toBe(401);
  });
});
