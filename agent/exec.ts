import { spawn, type SpawnOptions } from "node:child_process";
import { permanent, StepFailure, transient } from "./errors";

/** "phase": a "phase: <name>" line for the log pane's progress strip (lib/installer-phases.ts). */
export type LogFn = (text: string, stream?: "stdout" | "stderr" | "agent" | "phase") => void;

export interface RunOptions {
  /** Stream the child's output as log lines. */
  log?: LogFn;
  signal?: AbortSignal;
  /** Kill the child's whole process group after this long (ms); the failure is transient. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Keep at most this much of stdout/stderr in the result (bytes). */
  captureLimit?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Splits a byte stream into lines for the log; keeps the partial tail until the next chunk. */
function lineSplitter(emit: (line: string) => void) {
  let tail = "";
  return {
    push(chunk: Buffer) {
      const parts = (tail + chunk.toString("utf8")).split("\n");
      tail = parts.pop() ?? "";
      for (const p of parts) emit(p);
    },
    end() {
      if (tail) emit(tail);
      tail = "";
    },
  };
}

/**
 * Run a program with an argument array (never a shell string). The child leads its own process group so a
 * timeout or an abort kills everything it started. Resolves with the exit code; a program that cannot be
 * started (not installed) is a permanent failure, a timeout a transient one.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const limit = opts.captureLimit ?? 4 << 20;
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { stdio: ["ignore", "pipe", "pipe"], detached: true, env: opts.env ?? process.env };
    const child = spawn(cmd, args, spawnOpts);
    let stdout = "";
    let stderr = "";
    let killedFor: string | null = null;
    const out = lineSplitter((l) => opts.log?.(l, "stdout"));
    const err = lineSplitter((l) => opts.log?.(l, "stderr"));
    child.stdout!.on("data", (c: Buffer) => {
      if (stdout.length < limit) stdout += c.toString("utf8");
      out.push(c);
    });
    child.stderr!.on("data", (c: Buffer) => {
      if (stderr.length < limit) stderr += c.toString("utf8");
      err.push(c);
    });
    const kill = (why: string) => {
      killedFor = why;
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const timer = opts.timeoutMs ? setTimeout(() => kill(`timed out after ${Math.round(opts.timeoutMs! / 1000)} s`), opts.timeoutMs) : null;
    const onAbort = () => kill("aborted");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const cleanup = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    child.on("error", (e: NodeJS.ErrnoException) => {
      cleanup();
      reject(e.code === "ENOENT" ? permanent(`${cmd}: not installed (${e.message})`) : e);
    });
    child.on("close", (code, signal) => {
      cleanup();
      out.end();
      err.end();
      if (killedFor) return reject(transient(`${cmd} ${killedFor}`));
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

// Messages of util-linux and mdadm that mean someone else holds the device right now.
const BUSY = /busy|resource temporarily unavailable|in use|try again/i;

/** Run and require exit 0; a failure is transient when the tool says the device is busy. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-3).join(" / ") || `exit code ${r.code}`;
    throw new StepFailure(`${cmd} ${args[0] ?? ""} failed: ${why}`, BUSY.test(why));
  }
  return r;
}
