/**
 * What issue 16's multi-process runs share (server/scale-out.pg.test.ts, and bench/deploy-scale.ts): Rackhand server
 * processes (`server/main.ts`, real child processes) on one PostgreSQL, a round-robin "load balancer" for the
 * simulated agents (the real agent HTTP protocol, server/demo/sim-agent.ts), a fleet seeded through the Store, and a
 * batch driven to its end. The BMCs are the fake driver: each process has its own in-memory chassis, and power sync
 * is off so they never disagree.
 */
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { and, eq, inArray, sql } from "drizzle-orm";
import { AGENT_API_PREFIX } from "../../lib/agent-protocol";
import { sleep } from "../../lib/retry";
import { SecretBox } from "../auth/secrets";
import type { Domain } from "../context";
import { noSqliteOnPostgres } from "../db/client";
import type { Store } from "../db/store";
import { EventBus } from "../events/bus";
import { silentLogger } from "../log";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { AgentNonces, agentBootSessionIn } from "../netboot/agent-nonce";
import { createOobRuntime, defaultOobConfig } from "../oob/registry";
import { runSimulatedAgent, type AgentPost } from "../demo/sim-agent";

const hex2 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");
const macOf = (fleet: number, n: number) => `52:54:0${fleet}:${hex2(n >> 16)}:${hex2(n >> 8)}:${hex2(n)}`;

export interface Proc {
  name: string;
  child: ChildProcess;
  url: string;
  /** Its name in leases (host:pid), as processOwner() makes it. */
  owner: string;
  out: string[];
  alive: boolean;
}

/** One run's processes, temp dirs, HTTP agent and accepted log lines; `close()` kills what is left and removes the dirs. */
export class ScaleOutLab {
  readonly procs: Proc[] = [];
  readonly dirs: string[] = [];
  readonly keepAlive = new http.Agent({ keepAlive: true, maxSockets: 256 });
  /** Who accepted which log lines (the agent's POST answered 200), and when. */
  readonly accepted: { proc: string; stepId: number; seqs: number[]; at: number }[] = [];
  readonly secretKey = crypto.randomBytes(32).toString("hex");
  readonly password = "scale-out-admin-password";
  constructor(
    readonly stepMs: number,
    readonly linesPerStep: number,
    readonly progress: (msg: string) => void,
    /** More environment for every process (e.g. NODE_OPTIONS). */
    readonly env: Record<string, string> = {},
  ) {}

  /** SIGTERM the processes still alive (their in-flight work is recorded). */
  stopAll(): void {
    for (const p of this.procs) {
      if (!p.alive) continue;
      p.child.kill("SIGTERM");
      p.alive = false;
    }
  }

  close(): void {
    for (const p of this.procs) if (p.alive) p.child.kill("SIGKILL");
    this.keepAlive.destroy();
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

export function startProcess(lab: ScaleOutLab, name: string, url: string): Promise<Proc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rh-scale-${name}-`));
  lab.dirs.push(dir);
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: "production",
      RACKHAND_DATA_DIR: dir,
      RACKHAND_DATABASE_URL: url,
      RACKHAND_SECRET_KEY: lab.secretKey,
      RACKHAND_ADMIN_PASSWORD: lab.password,
      RACKHAND_HOST: "127.0.0.1",
      PORT: "0",
      RACKHAND_UI: "false",
      RACKHAND_POWER_SYNC: "false",
      RACKHAND_BMC_SPACING_MS: "0",
      RACKHAND_LOG_LEVEL: "info",
      ...lab.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p: Proc = { name, child, url: "", owner: `${os.hostname()}:${child.pid}`, out: [], alive: true };
  lab.procs.push(p);
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

export function rawPost(lab: ScaleOutLab, base: string, p: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; headers: http.IncomingHttpHeaders }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${p}`,
      { method: "POST", agent: lab.keepAlive, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...headers } },
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

/**
 * The agents' load balancer over `group`: each agent starts on "its" process and moves to the next live one when a
 * request cannot be sent or the process answers 5xx, as a balancer with health checks would. A long-poll cut by a
 * dying process (or a database restart) is sent again, for up to about 15 s.
 */
export function balancedPost(lab: ScaleOutLab, group: Proc[], start: number): AgentPost {
  let i = start;
  return async (p, body, token) => {
    for (let tries = 0; ; tries++) {
      const proc = group[i % group.length]!;
      try {
        if (!proc.alive) throw new Error("down");
        const r = await rawPost(lab, `${proc.url}${AGENT_API_PREFIX}`, p, body, token ? { authorization: `Bearer ${token}` } : {});
        if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
        if (p.endsWith("/logs") && r.status === 200) {
          const lines = (body as { lines: { seq: number }[] }).lines;
          lab.accepted.push({ proc: proc.name, stepId: Number(/^\/steps\/(\d+)\/logs$/.exec(p)?.[1]), seqs: lines.map((l) => l.seq), at: Date.now() });
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

export async function login(lab: ScaleOutLab, base: string): Promise<string> {
  const r = await rawPost(lab, base, "/api/trpc/auth.login", { name: "admin", password: lab.password });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
  const cookie = [r.headers["set-cookie"] ?? []].flat().map((c) => c.split(";")[0]!).find((c) => c.startsWith("rh_session="));
  if (!cookie) throw new Error("login answered without a session cookie");
  return cookie;
}

export interface Fleet {
  store: Store;
  d: Domain;
  ids: number[];
  macById: Map<number, string>;
}

/**
 * `n` deployed machines with an image profile and a (fake) BMC, written through the Store as an enrollment would. BMC
 * addresses end in .1 to .250: the fake driver plays an address ending in .254 as an unreachable BMC.
 */
export async function seedFleet(lab: ScaleOutLab, s: Store, fleet: number, n: number): Promise<Fleet> {
  const d: Domain = { db: noSqliteOnPostgres(), store: s, bus: new EventBus(), secrets: SecretBox.open("/nonexistent", lab.secretKey), log: silentLogger, oob: createOobRuntime(defaultOobConfig(os.tmpdir())) };
  const now = new Date();
  const [profile] = await s.db
    .insert(s.t.osProfiles)
    .values({ name: `scale-img-${fleet}`, kind: "image", osFamily: "debian", imageUrl: "http://127.0.0.1:1/scale.raw.gz", imageSha256: "ab".repeat(32), imageFormat: "raw.gz", createdAt: now, updatedAt: now })
    .returning();
  const ids: number[] = [];
  const macById = new Map<number, string>();
  for (let i = 1; i <= n; i++) {
    const bmc = { driver: "fake" as const, address: `10.25${fleet}.${Math.floor(i / 250)}.${(i % 250) + 1}`, port: 623, username: "scale", password: "scale", privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
    const { id } = await enrollMachine(d, { name: `so${fleet}-${i}`, bootMac: macOf(fleet, i), uHeight: 1, osProfileId: profile!.id, bmc }, "test");
    for (const act of ["manage", "provide", "deploy", "succeed"] as const) await transition(d, id, act, { actor: "test" });
    ids.push(id);
    macById.set(id, macOf(fleet, i));
  }
  lab.progress(`${n} machines enrolled and deployed`);
  return { store: s, d, ids, macById };
}

/**
 * The simulated agents: a machine whose job waits for its agent (wait_agent running) boots one, with the nonce its
 * agent boot entry carries, talking to `group` through the balancer. Also samples which process holds which step.
 * A query that fails (the database restarting) is tried again at the next sample.
 */
export function startAgents(lab: ScaleOutLab, f: Fleet, group: Proc[]) {
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
        runSimulatedAgent(balancedPost(lab, group, r.machineId), { macs: [macById.get(r.machineId)!], nonce, stepMs: lab.stepMs, linesPerStep: lab.linesPerStep, lookupTries: 2000, signal: abort.signal }).catch((err: Error) => {
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
export async function startReinstall(lab: ScaleOutLab, proc: Proc, ids: number[], concurrency: number): Promise<number> {
  const cookie = await login(lab, proc.url);
  const created = await rawPost(lab, proc.url, "/api/trpc/batches.create", { selection: { ids }, kind: "reinstall", concurrency, failureThresholdPct: 100, confirmCount: ids.length }, { cookie });
  if (created.status !== 200) throw new Error(`batches.create on ${proc.name}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  const batchId = (created.body as { result: { data: { batchId: number } } }).result.data.batchId;
  lab.progress(`batch ${batchId} created on ${proc.name}`);
  return batchId;
}

export async function countJobs(s: Store, batchId: number, state: string): Promise<number> {
  const { jobs } = s.t;
  return Number((await s.db.select({ n: sql<number>`count(*)` }).from(jobs).where(and(eq(jobs.batchId, batchId), eq(jobs.state, state))))[0]!.n);
}

/**
 * Wait until `act` returns true (polled every 100 ms with the number of jobs done), then until the batch finishes or
 * no job finished for 90 s (a step lease lapses in 15 s: stuck). Queries that fail (a restart) are polled again.
 */
export async function driveBatch(lab: ScaleOutLab, s: Store, batchId: number, act: (done: number) => Promise<boolean>): Promise<{ state: string; acted: boolean }> {
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
      if (Date.now() % 5000 < 250) lab.progress(`batch ${state}: ${doneNow} done`);
    } catch {
      // the database is restarting
    }
    await sleep(250);
  }
  return { state, acted };
}

