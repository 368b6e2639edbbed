/** Build check, and the production server as a child process: spawn, wait for /healthz, stop, read its memory. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BenchError } from "./http-trpc";

const BUILD_TIMEOUT_MS = 20 * 60_000;
const START_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;
const LOG_LINES = 200;

export interface BuildInfo {
  buildId: string;
  builtAt: Date;
}

const buildFiles = (root: string) => [path.join(root, "dist/server.mjs"), path.join(root, ".next/BUILD_ID")];

/** Run `npm run build` when the production bundle is missing; throws when the build fails or leaves it missing. */
export async function ensureBuild(root: string): Promise<BuildInfo> {
  const missing = () => buildFiles(root).filter((f) => !fs.existsSync(f));
  if (missing().length) {
    console.log(`Production build missing (${missing().map((f) => path.relative(root, f)).join(", ")}): running npm run build`);
    const code = await runInherited("npm", ["run", "build"], root, BUILD_TIMEOUT_MS);
    if (code !== 0) throw new BenchError(`npm run build failed (exit ${code}); fix the build before benchmarking`);
    if (missing().length) {
      throw new BenchError(`npm run build succeeded but did not produce ${missing().map((f) => path.relative(root, f)).join(", ")}`);
    }
  }
  const idFile = path.join(root, ".next/BUILD_ID");
  return { buildId: fs.readFileSync(idFile, "utf8").trim(), builtAt: fs.statSync(path.join(root, "dist/server.mjs")).mtime };
}

function runInherited(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: "inherit" });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => reject(new BenchError(`could not run ${cmd}: ${e.message}`)));
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  url: string;
  pid: number;
  dataDir: string;
  /** The last lines the server printed (stdout and stderr). */
  logTail(): string;
  /** SIGTERM, then SIGKILL after a grace period; removes the data directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** glibc malloc's settings, as scripts/start.sh and `npm run serve` set them (the caller's environment overrides them). */
export const SERVER_MALLOC_ENV = { MALLOC_ARENA_MAX: "2", MALLOC_TRIM_THRESHOLD_: "131072", MALLOC_MMAP_THRESHOLD_: "131072" };

/** Start `node --max-semi-space-size=1 --v8-pool-size=1 dist/server.mjs` with a fresh data directory and wait until /healthz answers. `extraEnv`: e.g. RACKHAND_UI. */
export async function startServer(root: string, adminPassword: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-bench-"));
  const port = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RACKHAND_")));
  const env: NodeJS.ProcessEnv = {
    ...SERVER_MALLOC_ENV,
    ...inherited,
    NODE_ENV: "production",
    NEXT_TELEMETRY_DISABLED: "1",
    RACKHAND_DATA_DIR: dataDir,
    PORT: String(port),
    RACKHAND_HOST: "127.0.0.1",
    RACKHAND_ADMIN_PASSWORD: adminPassword,
    ...extraEnv,
  };
  // As scripts/start.sh and `npm run serve` start it.
  // BENCH_NODE_FLAGS replaces the flags (e.g. "" to measure without them).
  const flags = process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS.split(" ").filter(Boolean) : ["--max-semi-space-size=1", "--v8-pool-size=1"];
  // BENCH_SERVER_FILE: another bundle (an A/B of two builds in the same minute).
  const bundle = process.env.BENCH_SERVER_FILE ?? "dist/server.mjs";
  const child = spawn(process.execPath, [...flags, bundle], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  // Last resort when the bench exits abruptly (watchdog, Ctrl-C): no child or temp data left behind.
  const killOnExit = () => {
    child.kill("SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.on("exit", killOnExit);

  const url = `http://127.0.0.1:${port}`;
  const proc: ServerProcess = {
    url,
    pid: child.pid ?? -1,
    dataDir,
    logTail: () => lines.slice(-40).join("\n"),
    stop: async () => {
      await stopChild(child);
      process.off("exit", killOnExit);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitHealthy(child, url, proc.logTail);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

async function waitHealthy(child: ChildProcess, url: string, logTail: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited(child)) {
      throw new BenchError(`the server exited during start-up (code ${child.exitCode}, signal ${child.signalCode}). Its log:\n${logTail()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new BenchError(`the server did not answer ${url}/healthz within ${START_TIMEOUT_MS / 1000} s. Its log:\n${logTail()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const done = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
  await done;
  clearTimeout(timer);
}

export interface Memory {
  rssMb: number;
  peakRssMb: number;
}

/** VmRSS and VmHWM (peak RSS) of a process, from /proc/<pid>/status. */
export function readMemory(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new BenchError(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) / 1024;
  };
  return { rssMb: kb("VmRSS"), peakRssMb: kb("VmHWM") };
}
