/**
 * Design (a) of issue 15, measured by bench:power and not used by the server: one long-lived
 * `ipmitool -I lanplus … shell` per BMC, commands written to its stdin, answers read up to the next prompt.
 * It keeps one RMCP+ session per BMC. Any timeout, error line or exit kills the shell; the next call starts a
 * new one (which is how it copes with session expiry, BMC restarts and hung sessions). The password goes through
 * the environment (-E), never argv.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { baseArgs, childEnv } from "../../server/oob/exec";
import type { BmcTarget } from "../../server/oob/types";
import { processCpuMs } from "./report";

const PROMPT = "ipmitool> ";

export class IpmitoolShell {
  private child: ChildProcess | undefined;
  private buf = "";
  private wake: (() => void) | undefined;
  restarts = 0;

  constructor(
    private readonly t: BmcTarget,
    private readonly timeoutMs = 5000,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private start(): ChildProcess {
    this.restarts++;
    const c = spawn("ipmitool", [...baseArgs(this.t).filter((a) => a !== "-v"), "shell"], { env: childEnv(this.t), stdio: ["pipe", "pipe", "pipe"] });
    this.buf = "";
    c.stdout.on("data", (b: Buffer) => {
      this.buf += b.toString("utf8");
      this.wake?.();
    });
    c.stderr.on("data", (b: Buffer) => {
      this.buf += b.toString("utf8");
      this.wake?.();
    });
    c.on("exit", () => {
      if (this.child === c) this.child = undefined;
      this.wake?.();
    });
    this.child = c;
    return c;
  }

  /** Run one command; resolves with its output (between the echoed command and the next prompt). */
  async run(command: string, timeoutMs = this.timeoutMs): Promise<string> {
    const c = this.child ?? this.start();
    this.buf = this.buf.endsWith(PROMPT) ? "" : this.buf;
    c.stdin!.write(command + "\n");
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.buf.indexOf(PROMPT, this.buf.startsWith(PROMPT) ? PROMPT.length : 0);
      const text = this.buf.replace(/^ipmitool> /, "");
      if (at >= 0 && text.includes(command)) {
        const out = text.slice(text.indexOf(command) + command.length, text.lastIndexOf(PROMPT));
        this.buf = PROMPT;
        if (/error|unable|timeout|closed/i.test(out)) {
          this.kill();
          throw new Error(`ipmitool shell: ${out.trim().split("\n").pop()}`);
        }
        return out;
      }
      if (!this.child) throw new Error("ipmitool shell exited");
      const left = deadline - Date.now();
      if (left <= 0) {
        this.kill();
        throw new Error(`ipmitool shell: no answer within ${timeoutMs} ms (output so far: ${JSON.stringify(this.buf.slice(-200))})`);
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          r();
        };
      });
    }
  }

  /** CPU (user + system, ms) the current shell process has used, from /proc. */
  cpuMs(): number {
    const pid = this.child?.pid;
    return pid ? (processCpuMs(pid) ?? 0) : 0;
  }

  kill(): void {
    this.child?.kill("SIGKILL");
    this.child = undefined;
  }
}
