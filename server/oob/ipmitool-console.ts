/**
 * Serial over LAN through `ipmitool sol activate`: one long-lived child per console. If the BMC says the SOL
 * payload is already active (a stale session, another tool), it is deactivated and activation retried once.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { BmcError, meaningfulLines } from "./errors";
import { baseArgs, bmcKey, childEnv, runIpmitool, type CallObserver } from "./exec";
import type { BmcScheduler } from "./scheduler";
import type { BmcTarget, ConsoleStream, OobConfig } from "./types";

const OPERATIONAL = "[SOL Session operational";
const ALREADY_ACTIVE = /SOL payload already active/i;

type Deps = { config: OobConfig; scheduler: BmcScheduler; observe?: CallObserver };

const STDBUF = ["/usr/bin/stdbuf", "/bin/stdbuf"].find((p) => fs.existsSync(p));

/** Start one `sol activate` child and wait until the BMC says the session is up (or the child gives up). */
function activate(deps: Deps, t: BmcTarget): Promise<ConsoleStream> {
  const args = [...baseArgs(t), "sol", "activate"];
  return new Promise((resolve, reject) => {
    // ipmitool's stdout is a pipe, so stdio buffers "[SOL Session operational …]" until the console prints
    // something: a quiet console (a machine that is off) would look like a hung activation. stdbuf -o0 (coreutils)
    // makes it unbuffered; it execs ipmitool, so the process is ipmitool with the same arguments.
    const child = STDBUF
      ? spawn(STDBUF, ["-o0", deps.config.ipmitoolPath, ...args], { env: childEnv(t), stdio: ["pipe", "pipe", "pipe"] })
      : spawn(deps.config.ipmitoolPath, args, { env: childEnv(t), stdio: ["pipe", "pipe", "pipe"] });
    const startedAt = Date.now();
    let operational = false;
    let early = "";
    const dataListeners: ((b: Buffer) => void)[] = [];
    const closeListeners: ((r: string) => void)[] = [];
    let closed = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      if (operational) return;
      timedOut = true;
      child.kill("SIGKILL");
    }, deps.config.callTimeoutMs);

    const stream: ConsoleStream = {
      write: (d) => {
        if (!closed) child.stdin.write(d);
      },
      onData: (l) => void dataListeners.push(l),
      onClose: (l) => void closeListeners.push(l),
      close: async () => {
        if (closed) return;
        // "~." is ipmitool's escape to end SOL cleanly (it deactivates the payload); kill if it lingers.
        child.stdin.write("\r~.");
        const killer = setTimeout(() => child.kill("SIGKILL"), 1000);
        await new Promise<void>((r) => child.once("close", () => r()));
        clearTimeout(killer);
      },
    };

    child.stdout.on("data", (b: Buffer) => {
      if (operational) {
        for (const l of dataListeners) l(b);
        return;
      }
      early += b.toString("latin1");
      const at = early.indexOf(OPERATIONAL);
      if (at < 0) return;
      operational = true;
      clearTimeout(timer);
      const eol = early.indexOf("\n", at);
      const rest = eol >= 0 ? Buffer.from(early.slice(eol + 1), "latin1") : Buffer.alloc(0);
      resolve(stream);
      if (rest.length) setImmediate(() => dataListeners.forEach((l) => l(rest)));
    });
    child.stderr.on("data", (b: Buffer) => (early += b.toString("latin1")));
    child.stdin.on("error", () => undefined); // EPIPE after the child ended; reported through "close"
    child.on("error", (e) => {
      clearTimeout(timer);
      if (!operational) reject(new BmcError("other", `ipmitool failed to start: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      closed = true;
      deps.observe?.({ key: bmcKey(t), pid: child.pid, args, startedAt, endedAt: Date.now(), ok: operational });
      if (!operational) {
        if (ALREADY_ACTIVE.test(early)) return reject(new BmcError("other", "SOL payload already active"));
        // -v output carries probe noise (e.g. "Invalid command" for Get VSO Capabilities): name the real reason.
        const tail = meaningfulLines(early).filter((l) => /error|unable|failed|invalid|unauthorized|timeout/i.test(l)).slice(-1)[0] ?? meaningfulLines(early).slice(-1)[0] ?? `exit code ${code}`;
        if (timedOut) return reject(new BmcError("transient", `SOL on BMC ${bmcKey(t)}: no session after ${deps.config.callTimeoutMs / 1000} s`));
        const kind = /HMAC is invalid|unauthorized name/i.test(early) ? "auth" : code === null || /Unable to establish/i.test(early) ? "transient" : "other";
        return reject(new BmcError(kind, `SOL on BMC ${bmcKey(t)} failed: ${tail.trim()}`));
      }
      for (const l of closeListeners) l(code === 0 ? "session ended" : `ipmitool exited (${code})`);
    });
  });
}

export async function openSolConsole(deps: Deps, t: BmcTarget): Promise<ConsoleStream> {
  const key = bmcKey(t);
  try {
    // Activation is a command like any other: serialised with power calls to the same BMC.
    return await deps.scheduler.exclusive(key, () => activate(deps, t));
  } catch (err) {
    if (!(err instanceof BmcError) || !/already active/.test(err.message)) throw err;
    await deps.scheduler.call(key, () => runIpmitool(deps.config, t, ["sol", "deactivate"], deps.observe));
    return deps.scheduler.exclusive(key, () => activate(deps, t));
  }
}
