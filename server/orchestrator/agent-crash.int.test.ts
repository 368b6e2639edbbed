import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp } from "../app";
import { loadConfig } from "../config";
import { openStore, type Store } from "../db/store";
import { silentLogger } from "../log";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { performAction } from "../operator/lifecycle-actions";
import { agentNonceArgs, buildAgentBundle, makeDisk, makeImage, serveImages, sha256OfPrefix, spawnAgent, until, type AgentProcess, type ImageServer } from "./testing/agent-harness";
import { testDatabaseEnv } from "../testing/test-store";

// kill -9 of the server in the middle of a deploy: the server runs as a real process (tsx), the agent keeps
// writing, buffers its log lines and retries; a new server process on the same port and data directory
// resumes the job, and the log ends up with every seq exactly once.
let dir: string;
let images: ImageServer;
let server: ChildProcess | null = null;
let agent: AgentProcess | null = null;
let store: Store | null = null;
/** The database of the run (server/testing/test-store.ts): the in-process seed and both server processes share it. */
let dbEnv: { RACKHAND_DATABASE_URL?: string } = {};
let serverLog = "";
const ADMIN_PASSWORD = "admin-password-1";

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    env: {
      ...process.env,
      ...dbEnv,
      RACKHAND_DATA_DIR: dir,
      PORT: String(port),
      RACKHAND_HOST: "127.0.0.1",
      RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RACKHAND_POWER_SYNC: "false",
      RACKHAND_UI: "false",
      RACKHAND_LOG_LEVEL: "warn",
      NODE_ENV: "test",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (c: Buffer) => (serverLog += c.toString()));
  child.stderr.on("data", (c: Buffer) => (serverLog += c.toString()));
  await until("the server to answer /healthz", () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false), 20_000);
  return child;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-crash-"));
  dbEnv = await testDatabaseEnv();
});
afterAll(async () => {
  agent?.child.kill("SIGKILL");
  server?.kill("SIGKILL");
  await store?.close();
  await images?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("kill -9 of the server during a deploy", () => {
  it("resumes after a restart: the job completes, no log line missing or duplicated", async () => {
    const bundle = await buildAgentBundle(dir);
    const image = makeImage(dir, 4);
    images = await serveImages(image.files);
    // ~2.5 MB/s: the write takes about 1.6 s, during which the server dies.
    images.throttle(64 << 10, 25);
    const disk = makeDisk(dir, "disk.img", 16);
    const mac = "52:54:00:cc:00:01";

    // Seed with the app in-process (a fake BMC so power and boot-device steps work), start the deploy, stop.
    const config = loadConfig({ ...dbEnv, RACKHAND_DATA_DIR: dir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: ADMIN_PASSWORD, RACKHAND_POWER_SYNC: "false", NODE_ENV: "test" }, { ui: false });
    const seed = await startApp(config, silentLogger);
    const d = seed.domain;
    const profile = (await d.store.db
      .insert(d.store.t.osProfiles)
      .values({ name: "crash-img", kind: "image", osFamily: "debian", imageUrl: `${images.url}/disk.raw.gz`, imageSha256: image.sha256, imageFormat: "raw.gz", createdAt: new Date(), updatedAt: new Date() })
      .returning())[0]!;
    const bmc = { driver: "fake" as const, address: "10.0.0.1", port: 623, username: "admin", password: "bmc-password", privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
    const { id } = await enrollMachine(d, { name: "crash-1", bootMac: mac, uHeight: 1, osProfileId: profile.id, bmc }, "test");
    await transition(d, id, "manage", { actor: "test" });
    await transition(d, id, "provide", { actor: "test" });
    const jobId = (await performAction(d, id, "deploy", "user:test")).jobId!;
    const nonce = await agentNonceArgs(d, id);
    await seed.close();

    const port = await freePort();
    server = await startServer(port);
    const { db, t } = (store = await openStore(dir, dbEnv.RACKHAND_DATABASE_URL));
    const job = async () => (await db.select().from(t.jobs).where(eq(t.jobs.id, jobId)))[0]!;
    const write = async () => (await db.select().from(t.steps).where(eq(t.steps.jobId, jobId))).find((s) => s.name === "write_image")!;
    const lines = async () => db.select().from(t.logLines).where(eq(t.logLines.jobId, jobId)).orderBy(asc(t.logLines.seq));

    agent = spawnAgent(bundle, `http://127.0.0.1:${port}`, mac, disk, ["--progress-ms", "20", ...nonce]);
    // Mid-write: the step is running and some progress lines already reached the database.
    await until("progress lines of write_image", async () => (await write()).state === "running" && (await lines()).filter((l) => l.text.startsWith("written ")).length >= 5, 20_000);
    server.kill("SIGKILL");
    await new Promise((r) => server!.once("exit", r));
    const killedAt = Date.now();
    const storedBefore = (await lines()).length;
    await new Promise((r) => setTimeout(r, 700)); // the agent keeps writing and logging meanwhile
    server = await startServer(port);
    const restartedAt = Date.now();

    await until("the job to finish", async () => ["succeeded", "failed", "cancelled"].includes((await job()).state), 30_000);
    expect(await agent.exited, agent.output()).toBe(0);
    expect(await job(), `${agent.output()}\n${serverLog}`).toMatchObject({ state: "succeeded", error: null });
    expect(await write()).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(sha256OfPrefix(disk, image.sizeBytes)).toBe(image.sha256);

    const all = await lines();
    // Every seq exactly once, none missing: 0..N-1.
    expect(all.map((l) => l.seq)).toEqual(all.map((_, i) => i));
    expect(all.length).toBeGreaterThan(storedBefore);
    // Lines produced while the server was dead were buffered and arrived after the restart.
    expect(all.some((l) => l.ts.getTime() > killedAt && l.ts.getTime() < restartedAt)).toBe(true);
    // No line was logged twice under different seqs (a resend must reuse its seq).
    const texts = all.map((l) => `${l.stepId}:${l.ts.getTime()}:${l.text}`);
    expect(new Set(texts).size).toBe(texts.length);
    expect(all.filter((l) => l.text === "write_image: attempt 1 started")).toHaveLength(1);
    expect(agent.output()).toMatch(/fetch failed|ECONNREFUSED/);
    // Two server starts, an agent process and the deploy's steps (the wipe's image check included): more than the
    // default 20 s on a loaded 2-core host.
  }, 90_000);
});
