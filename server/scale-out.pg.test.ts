/**
 * Issue 16's multi-process tests. The first: three Rackhand server processes (`server/main.ts`, real child processes) on one
 * PostgreSQL that this test starts, a bulk reinstall of 200 machines driven by simulated agents speaking the real
 * agent HTTP protocol through a round-robin "load balancer", and one process killed with SIGKILL in the middle.
 *
 * What is simulated: the agents (server/demo/sim-agent.ts, as bench:deploy's) and the BMCs (the fake driver; each
 * process has its own in-memory chassis, and power sync is off so they never disagree). What is real: the server
 * processes, PostgreSQL, step leases and their takeover, the bus bridge (LISTEN/NOTIFY), socket.io, HTTP.
 * The second: two processes, and PostgreSQL itself restarted (`pg_ctl restart -m fast`: every connection cut) in the
 * middle of a batch.
 */
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { and, eq, inArray, sql } from "drizzle-orm";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_API_PREFIX } from "../lib/agent-protocol";
import type { LiveEvent } from "../lib/live-events";
import { sleep } from "../lib/retry";
import { SecretBox } from "./auth/secrets";
import type { Domain } from "./context";
import { noSqliteOnPostgres } from "./db/client";
import { openStore, type Store } from "./db/store";
import { EventBus } from "./events/bus";
import { silentLogger } from "./log";
import { enrollMachine } from "./machines/enroll";
import { transition } from "./machines/lifecycle";
import { AgentNonces, agentBootSessionIn } from "./netboot/agent-nonce";
import { createOobRuntime, defaultOobConfig } from "./oob/registry";
import { runSimulatedAgent, type AgentPost } from "./demo/sim-agent";
import { startPgCluster, type PgCluster } from "./testing/pg-cluster";

const N = Number(process.env.RACKHAND_SCALE_OUT_MACHINES ?? 200);
/** Machines of the PostgreSQL-restart batch. */
const N_RESTART = Math.ceil(N / 2);
const CONCURRENCY = 40;
const STEP_MS = 100;
const LINES_PER_STEP = 5;
const PASSWORD = "scale-out-admin-password";
const SECRET_KEY = crypto.randomBytes(32).toString("hex");

const started = Date.now();
/** Progress on stderr: a run that hangs says where. */
const progress = (msg: string) => process.stderr.write(`[scale-out +${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}\n`);

const hex2 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");
const macOf = (fleet: number, n: number) => `52:54:0${fleet}:${hex2(n >> 16)}:${hex2(n >> 8)}:${hex2(n)}`;

interface Proc {
  name: string;
  child: ChildProcess;
  url: string;
  /** Its name in leases (host:pid), as processOwner() makes it. */
  owner: string;
  out: string[];
  alive: boolean;
}

let cluster: PgCluster;
const procs: Proc[] = [];
const dirs: string[] = [];

function startProcess(name: string, url: string): Promise<Proc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rh-scale-${name}-`));
  dirs.push(dir);
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: "production",
      RACKHAND_DATA_DIR: dir,
      RACKHAND_DATABASE_URL: url,
      RACKHAND_SECRET_KEY: SECRET_KEY,
      RACKHAND_ADMIN_PASSWORD: PASSWORD,
      RACKHAND_HOST: "127.0.0.1",
      PORT: "0",
      RACKHAND_UI: "false",
      RACKHAND_POWER_SYNC: "false",
      RACKHAND_BMC_SPACING_MS: "0",
      RACKHAND_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p: Proc = { name, child, url: "", owner: `${os.hostname()}:${child.pid}`, out: [], alive: true };
  procs.push(p);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 90 s:\n${p.out.join("")}`)), 90_000);
    const onData = (b: Buffer) => {
      const s = b.toString("utf8");
      p.out.push(s);
      if (p.out.length > 400) p.out.splice(0, p.out.length - 400);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(s);
      if (m && !p.url) {
        p.url = m[1]!;
        clearTimeout(timer);
        resolve(p);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code, signal) => {
      p.alive = false;
      if (!p.url) {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before listening:\n${p.out.join("")}`));
      }
    });
  });
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 256 });

function rawPost(base: string, p: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; headers: http.IncomingHttpHeaders }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${p}`,
      { method: "POST", agent: keepAlive, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // a plain-text answer (an error page) stays text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Who accepted which log lines (the agent's POST answered 200), and when. */
const accepted: { proc: string; stepId: number; seqs: number[]; at: number }[] = [];

/**
 * The agents' load balancer over `group`: each agent starts on "its" process and moves to the next live one when a
 * request cannot be sent or the process answers 5xx, as a balancer with health checks would. A long-poll cut by a
 * dying process (or a database restart) is sent again, for up to about 15 s.
 */
function balancedPost(group: Proc[], start: number): AgentPost {
  let i = start;
  return async (p, body, token) => {
    for (let tries = 0; ; tries++) {
      const proc = group[i % group.length]!;
      try {
        if (!proc.alive) throw new Error("down");
        const r = await rawPost(`${proc.url}${AGENT_API_PREFIX}`, p, body, token ? { authorization: `Bearer ${token}` } : {});
        if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
        if (p.endsWith("/logs") && r.status === 200) {
          const lines = (body as { lines: { seq: number }[] }).lines;
          accepted.push({ proc: proc.name, stepId: Number(/^\/steps\/(\d+)\/logs$/.exec(p)?.[1]), seqs: lines.map((l) => l.seq), at: Date.now() });
        }
        return { status: r.status, body: r.body };
      } catch (err) {
        if (tries >= 300) throw err;
        i++;
        await sleep(50);
      }
    }
  };
}

async function login(base: string): Promise<string> {
  const r = await rawPost(base, "/api/trpc/auth.login", { name: "admin", password: PASSWORD });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
  const cookie = [r.headers["set-cookie"] ?? []].flat().map((c) => c.split(";")[0]!).find((c) => c.startsWith("rh_session="));
  if (!cookie) throw new Error("login answered without a session cookie");
  return cookie;
}

interface Fleet {
  store: Store;
  d: Domain;
  ids: number[];
  macById: Map<number, string>;
}

/** `n` deployed machines with an image profile and a (fake) BMC, written through the Store as an enrollment would. */
async function seedFleet(s: Store, fleet: number, n: number): Promise<Fleet> {
  const d: Domain = { db: noSqliteOnPostgres(), store: s, bus: new EventBus(), secrets: SecretBox.open("/nonexistent", SECRET_KEY), log: silentLogger, oob: createOobRuntime(defaultOobConfig(os.tmpdir())) };
  const now = new Date();
  const [profile] = await s.db
    .insert(s.t.osProfiles)
    .values({ name: `scale-img-${fleet}`, kind: "image", osFamily: "debian", imageUrl: "http://127.0.0.1:1/scale.raw.gz", imageSha256: "ab".repeat(32), imageFormat: "raw.gz", createdAt: now, updatedAt: now })
    .returning();
  const ids: number[] = [];
  const macById = new Map<number, string>();
  for (let i = 1; i <= n; i++) {
    const bmc = { driver: "fake" as const, address: `10.25${fleet}.${i >> 8}.${i & 255}`, port: 623, username: "scale", password: "scale", privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
    const { id } = await enrollMachine(d, { name: `so${fleet}-${i}`, bootMac: macOf(fleet, i), uHeight: 1, osProfileId: profile!.id, bmc }, "test");
    for (const act of ["manage", "provide", "deploy", "succeed"] as const) await transition(d, id, act, { actor: "test" });
    ids.push(id);
    macById.set(id, macOf(fleet, i));
  }
  progress(`${n} machines enrolled and deployed`);
  return { store: s, d, ids, macById };
}

/**
 * The simulated agents: a machine whose job waits for its agent (wait_agent running) boots one, with the nonce its
 * agent boot entry carries, talking to `group` through the balancer. Also samples which process holds which step.
 * A query that fails (the database restarting) is tried again at the next sample.
 */
function startAgents(f: Fleet, group: Proc[]) {
  const { store: s, d, macById } = f;
  const nonces = AgentNonces.of(d);
  const booted = new Set<number>();
  const errors: string[] = [];
  const abort = new AbortController();
  const runs: Promise<void>[] = [];
  /** Steps seen running under each process's lease (sampled), and when. */
  const claimedBy = new Map<string, Map<number, number>>();
  let watching = true;
  const { jobs, steps } = s.t;
  const sample = async () => {
    const running = await s.db
      .select({ stepId: steps.id, name: steps.name, owner: steps.leaseOwner, jobId: jobs.id, machineId: jobs.machineId })
      .from(steps)
      .innerJoin(jobs, eq(jobs.id, steps.jobId))
      .where(and(eq(steps.state, "running"), inArray(jobs.machineId, f.ids)));
    for (const r of running) {
      if (r.owner) {
        let m = claimedBy.get(r.owner);
        if (!m) claimedBy.set(r.owner, (m = new Map()));
        if (!m.has(r.stepId)) m.set(r.stepId, Date.now());
      }
      if (r.name !== "wait_agent" || booted.has(r.jobId)) continue;
      const session = await agentBootSessionIn(s, s.db, r.machineId);
      booted.add(r.jobId);
      const nonce = session === null ? null : nonces.nonce(r.machineId, session);
      runs.push(
        runSimulatedAgent(balancedPost(group, r.machineId), { macs: [macById.get(r.machineId)!], nonce, stepMs: STEP_MS, linesPerStep: LINES_PER_STEP, lookupTries: 2000, signal: abort.signal }).catch((err: Error) => {
          errors.push(`machine ${r.machineId}: ${err.message}`);
        }),
      );
    }
  };
  const watcher = (async () => {
    while (watching) {
      await sample().catch(() => undefined);
      await sleep(100);
    }
  })();
  return {
    booted,
    claimedBy,
    errors,
    /** Stop booting agents; with `abort`, stop those running too. Resolves when all have ended. */
    async stop(abortRunning: boolean) {
      watching = false;
      await watcher;
      if (abortRunning) abort.abort();
      await Promise.all(runs);
    },
  };
}

/** Start a reinstall of the fleet on `proc` as an operator would (tRPC batches.create). */
async function startReinstall(proc: Proc, ids: number[]): Promise<number> {
  const cookie = await login(proc.url);
  const created = await rawPost(proc.url, "/api/trpc/batches.create", { selection: { ids }, kind: "reinstall", concurrency: CONCURRENCY, failureThresholdPct: 100, confirmCount: ids.length }, { cookie });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
  const batchId = (created.body as { result: { data: { batchId: number } } }).result.data.batchId;
  progress(`batch ${batchId} created on ${proc.name}`);
  return batchId;
}

async function countJobs(s: Store, batchId: number, state: string): Promise<number> {
  const { jobs } = s.t;
  return Number((await s.db.select({ n: sql<number>`count(*)` }).from(jobs).where(and(eq(jobs.batchId, batchId), eq(jobs.state, state))))[0]!.n);
}

/**
 * Wait until `act` returns true (polled every 100 ms with the number of jobs done), then until the batch finishes or
 * no job finished for 90 s (a step lease lapses in 15 s: stuck). Queries that fail (a restart) are polled again.
 */
async function driveBatch(s: Store, batchId: number, act: (done: number) => Promise<boolean>): Promise<{ state: string; acted: boolean }> {
  const t0 = Date.now();
  let acted = false;
  while (!acted && Date.now() - t0 < 240_000) {
    const done = await countJobs(s, batchId, "succeeded").catch(() => -1);
    if (done >= 0) acted = await act(done);
    if (!acted) await sleep(100);
  }
  let state = "";
  let last = { done: -1, at: Date.now() };
  while (Date.now() - t0 < 600_000) {
    try {
      const [bt] = await s.db.select({ state: s.t.batches.state }).from(s.t.batches).where(eq(s.t.batches.id, batchId));
      state = bt!.state;
      if (state === "finished") break;
      const doneNow = (await countJobs(s, batchId, "succeeded")) + (await countJobs(s, batchId, "failed"));
      if (doneNow !== last.done) last = { done: doneNow, at: Date.now() };
      else if (Date.now() - last.at > 90_000) break;
      if (Date.now() % 5000 < 250) progress(`batch ${state}: ${doneNow} done`);
    } catch {
      // the database is restarting
    }
    await sleep(250);
  }
  return { state, acted };
}

/**
 * What both tests demand of a finished batch: every job succeeded, no machine stuck, every job's log sequence
 * numbers contiguous from 0 and every agent line there once per attempt. Returns the jobs' ids.
 */
async function expectCompleteBatch(f: Fleet, batchId: number, state: string, agentErrors: string[], group: Proc[]): Promise<number[]> {
  const { store: s, ids } = f;
  const { jobs, steps, logLines } = s.t;
  const unfinished = await s.db
    .select({ job: jobs.id, jobState: jobs.state, step: steps.id, name: steps.name, state: steps.state, attempt: steps.attempt, owner: steps.leaseOwner, expires: steps.leaseExpiresAt, next: steps.nextAttemptAt, error: steps.error })
    .from(steps)
    .innerJoin(jobs, eq(jobs.id, steps.jobId))
    .where(and(eq(jobs.batchId, batchId), inArray(jobs.state, ["queued", "running"])))
    .orderBy(steps.id);
  const tail = () => `${JSON.stringify(unfinished.slice(0, 40), null, 1)}\n` + group.map((p) => `--- ${p.name} (${p.owner})\n${p.out.slice(-40).join("")}`).join("\n");
  expect(state, tail()).toBe("finished");
  expect(agentErrors, tail()).toEqual([]);
  const batchJobs = await s.db.select({ id: jobs.id, state: jobs.state, error: jobs.error }).from(jobs).where(eq(jobs.batchId, batchId));
  expect(batchJobs).toHaveLength(ids.length);
  expect(batchJobs.filter((j) => j.state !== "succeeded"), tail()).toEqual([]);

  // No machine is stuck: all back to deployed, none with a job still open.
  const ms = await s.db.select({ id: s.t.machines.id, state: s.t.machines.state }).from(s.t.machines).where(inArray(s.t.machines.id, ids));
  expect(ms.filter((m) => m.state !== "deployed")).toEqual([]);
  const open = await s.db.select({ id: jobs.id }).from(jobs).where(and(inArray(jobs.machineId, ids), inArray(jobs.state, ["queued", "running"])));
  expect(open).toEqual([]);

  // Every log line once, sequence numbers contiguous from 0 in every job; every agent line there once per attempt.
  const jobIds = batchJobs.map((j) => j.id);
  const lines = await s.db.select({ jobId: logLines.jobId, seq: logLines.seq, stepId: logLines.stepId, text: logLines.text }).from(logLines).where(inArray(logLines.jobId, jobIds));
  const byJob = new Map<number, number[]>();
  for (const l of lines) (byJob.get(l.jobId) ?? byJob.set(l.jobId, []).get(l.jobId)!).push(l.seq);
  for (const id of jobIds) {
    const seqs = (byJob.get(id) ?? []).sort((x, y) => x - y);
    expect(seqs.length, `job ${id} has no log lines`).toBeGreaterThan(0);
    expect(seqs, `job ${id}`).toEqual(seqs.map((_, i) => i));
  }
  const agentSteps = await s.db.select({ id: steps.id, attempt: steps.attempt }).from(steps).where(and(inArray(steps.jobId, jobIds), eq(steps.runner, "agent")));
  const perStep = new Map<number, Map<string, number>>();
  for (const l of lines) {
    if (!/: simulated line \d+$/.test(l.text)) continue;
    const m = perStep.get(l.stepId!) ?? perStep.set(l.stepId!, new Map()).get(l.stepId!)!;
    m.set(l.text, (m.get(l.text) ?? 0) + 1);
  }
  for (const st of agentSteps) {
    const m = perStep.get(st.id);
    expect(m?.size, `agent step ${st.id}`).toBe(LINES_PER_STEP);
    for (const [text, n] of m!) expect(n, `step ${st.id} "${text}"`).toBe(st.attempt);
  }
  return jobIds;
}

/** After each test: its processes stopped (SIGTERM), its store closed. */
async function endTest(s: Store): Promise<void> {
  for (const p of procs) {
    if (!p.alive) continue;
    p.child.kill("SIGTERM");
    p.alive = false;
  }
  await s.close();
}

beforeAll(async () => {
  cluster = await startPgCluster();
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.alive) p.child.kill("SIGKILL");
  keepAlive.destroy();
  await cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}, 60_000);

describe("several processes on one PostgreSQL", () => {
  it("three finish a bulk reinstall of 200 machines when one of them is killed with SIGKILL in the middle", async () => {
    const dbUrl = await cluster.createDatabase("rh_kill");
    const s = await openStore("/nonexistent", dbUrl, { max: 4 });
    try {
      // The processes start at once: migrations under the advisory lock, one admin, no error.
      const group = await Promise.all([startProcess("A", dbUrl), startProcess("B", dbUrl), startProcess("C", dbUrl)]);
      const [a, b, c] = group;
      progress(`processes listening: ${group.map((p) => `${p.name} ${p.url} ${p.owner}`).join(", ")}`);
      const f = await seedFleet(s, 2, N);

      // A browser on C, watching every machine.
      const cookieC = await login(c.url);
      const seenOnC: LiveEvent[] = [];
      const socket: Socket = io(c.url, { transports: ["websocket"], extraHeaders: { cookie: cookieC }, forceNew: true, reconnection: false });
      socket.on("live", (e: LiveEvent) => seenOnC.push(e));
      await new Promise<void>((resolve, reject) => {
        socket.once("connect_error", reject);
        socket.once("connect", () => resolve());
      });
      for (const id of f.ids) expect(await socket.timeout(5000).emitWithAck("subscribe", { machineId: id })).toEqual({ ok: true });

      const agents = startAgents(f, group);
      const batchId = await startReinstall(a, f.ids);

      // Kill A in the middle: a third of the jobs done, and A holding step leases right now.
      let killedAt = 0;
      let aStepsAtKill: number[] = [];
      const { steps } = s.t;
      const { state, acted } = await driveBatch(s, batchId, async (done) => {
        const heldByA = await s.db.select({ id: steps.id }).from(steps).where(and(eq(steps.state, "running"), eq(steps.leaseOwner, a.owner)));
        if (Date.now() % 5000 < 100) progress(`${done} jobs succeeded, A holds ${heldByA.length} steps, ${agents.booted.size} agents booted`);
        if (done < N / 3 || heldByA.length === 0) return false;
        aStepsAtKill = heldByA.map((x) => x.id);
        a.child.kill("SIGKILL");
        a.alive = false;
        killedAt = Date.now();
        progress(`A killed with ${done} jobs done, holding steps ${aStepsAtKill.join(" ")}`);
        return true;
      });
      expect(acted, "A was never seen holding a step lease once a third of the jobs were done").toBe(true);
      await agents.stop(state !== "finished");
      const jobIds = await expectCompleteBatch(f, batchId, state, agents.errors, group);

      // The steps A held when it died were taken over (none left running, none failed).
      const aSteps = await s.db.select({ id: steps.id, state: steps.state }).from(steps).where(inArray(steps.id, aStepsAtKill));
      for (const x of aSteps) expect(x.state).toBe("succeeded");

      // The browser on C saw what A did: A's step claims (published by A's bus, carried by the bridge) …
      // An event of A's last moments may die in its send queue with it (the bridge carries what a live process
      // sends; a browser backfills what it missed on reconnect), so only what A did 3 s or more before its death counts.
      const aClaimed = [...(agents.claimedBy.get(a.owner) ?? new Map<number, number>())];
      const aClaims = aClaimed.filter(([, at]) => at < killedAt - 3000).map(([id]) => id);
      expect(aClaims.length).toBeGreaterThan(0);
      const runningSeen = new Set(seenOnC.filter((e) => e.type === "step.changed" && e.state === "running").map((e) => (e as { stepId: number }).stepId));
      const missed = aClaims.filter((id) => !runningSeen.has(id));
      const stepEvents = (id: number) => seenOnC.filter((e) => e.type === "step.changed" && e.stepId === id).map((e) => (e as { state: string }).state);
      expect(missed, missed.map((id) => `step ${id}: seen in the database ${killedAt - new Map(aClaimed).get(id)!} ms before the kill; C saw ${stepEvents(id).join(",")}`).join("\n")).toEqual([]);
      // … and the log lines agents posted to A, 3 s or more before it died (each by its step and sequence number).
      const linesOnC = new Set<string>();
      for (const e of seenOnC) if (e.type === "log.lines") for (const l of e.lines) linesOnC.add(`${l.stepId}:${l.seq}`);
      const toA = accepted.filter((x) => x.proc === "A" && x.at < killedAt - 3000);
      expect(toA.length).toBeGreaterThan(0);
      expect(toA.flatMap((x) => x.seqs.map((q) => `${x.stepId}:${q}`)).filter((k) => !linesOnC.has(k))).toEqual([]);
      // Every job's final state reached C.
      const jobDoneOnC = new Set(seenOnC.filter((e) => e.type === "job.changed" && e.state === "succeeded").map((e) => (e as { jobId: number }).jobId));
      expect(jobIds.filter((id) => !jobDoneOnC.has(id))).toEqual([]);
      socket.close();
      expect(b.alive && c.alive).toBe(true);
    } finally {
      await endTest(s);
    }
  }, 900_000);

  it("two carry on through a PostgreSQL restart in the middle of a batch, and nothing is lost", async () => {
    const dbUrl = await cluster.createDatabase("rh_restart");
    const s = await openStore("/nonexistent", dbUrl, { max: 4 });
    try {
      const group = await Promise.all([startProcess("R1", dbUrl), startProcess("R2", dbUrl)]);
      const f = await seedFleet(s, 3, N_RESTART);
      const agents = startAgents(f, group);
      const batchId = await startReinstall(group[0], f.ids);
      let restartedAt = 0;
      const { state, acted } = await driveBatch(s, batchId, async (done) => {
        if (done < N_RESTART / 3) return false;
        progress(`restarting PostgreSQL with ${done} jobs done`);
        await cluster.restart();
        restartedAt = Date.now();
        progress("PostgreSQL is back");
        return true;
      });
      expect(acted).toBe(true);
      await agents.stop(state !== "finished");
      await expectCompleteBatch(f, batchId, state, agents.errors, group);
      // Both processes lived through it and answer /healthz from the database again.
      for (const p of group) {
        expect(p.alive, `${p.name} died:\n${p.out.slice(-30).join("")}`).toBe(true);
        const r = await fetch(`${p.url}/healthz`);
        expect(r.status).toBe(200);
        expect(await r.json()).toMatchObject({ store: "postgres" });
      }
      // Work went on after the restart: jobs finished after it.
      const after = await s.db.select({ n: sql<number>`count(*)` }).from(s.t.jobs).where(and(eq(s.t.jobs.batchId, batchId), sql`${s.t.jobs.finishedAt} > ${new Date(restartedAt)}`));
      expect(Number(after[0]!.n)).toBeGreaterThan(0);
    } finally {
      await endTest(s);
    }
  }, 900_000);
});
