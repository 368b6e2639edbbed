/**
 * Running ipmitool: argument arrays (never a shell), the password through the environment and `-E` (never argv,
 * so it cannot be read from /proc/<pid>/cmdline or `ps`), and a hard timeout that kills the child.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { BmcError, classifyFailure, meaningfulLines } from "./errors";
import type { BmcTarget, OobConfig } from "./types";

/** Seen by tests and metrics: one record per ipmitool child. */
export interface IpmitoolCall {
  key: string;
  pid: number | undefined;
  args: string[];
  startedAt: number;
  endedAt: number;
  ok: boolean;
}
export type CallObserver = (c: IpmitoolCall) => void;

/** Connection options shared by every command. `-N 1 -R 2`: ipmitool's own per-packet retries stay short. */
export function baseArgs(t: BmcTarget): string[] {
  return ["-I", "lanplus", "-H", t.address, "-p", String(t.port), "-U", t.username, "-L", t.privilege, "-C", String(t.cipherSuite), "-N", "1", "-R", "2", "-E", "-v"];
}

/** The environment ipmitool runs with: nothing of ours but PATH and the password. */
export function childEnv(t: BmcTarget): NodeJS.ProcessEnv {
  // NODE_ENV only because Next's types make it a required key of ProcessEnv.
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", NODE_ENV: "production", IPMI_PASSWORD: t.password };
}

export function bmcKey(t: Pick<BmcTarget, "address" | "port">): string {
  return `${t.address}:${t.port}`;
}

/**
 * Run one ipmitool command to completion. Resolves with stdout; throws BmcError (classified) on a non-zero exit,
 * a spawn failure or the timeout.
 */
export function runIpmitool(cfg: Pick<OobConfig, "ipmitoolPath" | "callTimeoutMs">, t: BmcTarget, command: string[], observe?: CallObserver): Promise<string> {
  const args = [...baseArgs(t), ...command];
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(cfg.ipmitoolPath, args, { env: childEnv(t), stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      reject(new BmcError("other", `Cannot run ${cfg.ipmitoolPath}: ${(err as Error).message}`));
      return;
    }
    let out = "";
    let err = "";
    let timedOut = false;
    child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
    child.stderr!.on("data", (b: Buffer) => (err += b.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, cfg.callTimeoutMs);
    const finish = (ok: boolean) => observe?.({ key: bmcKey(t), pid: child.pid, args, startedAt, endedAt: Date.now(), ok });
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      finish(false);
      reject(new BmcError("other", e.code === "ENOENT" ? `${cfg.ipmitoolPath} is not installed` : `ipmitool failed to start: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      finish(code === 0 && !timedOut);
      if (timedOut) return reject(new BmcError("transient", `BMC ${bmcKey(t)} did not answer within ${cfg.callTimeoutMs} ms`));
      if (code === 0) return resolve(out);
      const text = `${out}\n${err}`;
      const kind = classifyFailure(text);
      const detail = meaningfulLines(text).slice(-2).join("; ") || `exit code ${code}`;
      const what: Record<typeof kind, string> = {
        transient: `BMC ${bmcKey(t)} is unreachable`,
        auth: `BMC ${bmcKey(t)} refused the credentials`,
        unsupported: `BMC ${bmcKey(t)} does not support "${command.join(" ")}"`,
        other: `BMC ${bmcKey(t)}: "${command.join(" ")}" failed`,
      };
      reject(new BmcError(kind, `${what[kind]} (${detail})`));
    });
  });
}
