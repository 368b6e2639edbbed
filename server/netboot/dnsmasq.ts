/**
 * `managed` mode: dnsmasq as a supervised child process (argument arrays, never a shell), in the foreground,
 * restarted with exponential backoff when it dies, SIGHUP'd when host entries were removed or changed (it only
 * adds hosts dynamically) or the dhcp-hostsfile was rewritten, and restarted when its configuration changed (SIGHUP does not re-read dnsmasq.conf).
 * Its stderr/stdout lines (log-facility=-) go to Rackhand's log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import readline from "node:readline";
import { backoffDelay } from "../../lib/retry";
import type { Logger } from "../log";
import type { DhcpBackend, DhcpBackendStatus } from "./backend";
import type { TreeChanges } from "./reconciler";

export interface DnsmasqOptions {
  confFile: string;
  log: Logger;
  /** Program and leading arguments, e.g. ["dnsmasq"] or ["ip", "netns", "exec", "ns1", "dnsmasq"]. */
  command?: string[];
  /** Backoff after a crash, doubled up to maxBackoffMs (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called with every log line (tests wait on them). */
  onLine?: (line: string) => void;
}

export class DnsmasqSupervisor implements DhcpBackend {
  readonly mode = "managed" as const;
  private child: ChildProcess | null = null;
  private stopping = false;
  /** Quick deaths in a row (the backoff exponent). */
  private quickDeaths = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private restarts = 0;
  private lastExit: string | null = null;
  private startedAt = 0;

  constructor(private readonly o: DnsmasqOptions) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Check the configuration with `dnsmasq --test`, then start. @throws Error when dnsmasq is missing or the config is refused */
  async start(): Promise<void> {
    this.stopping = false;
    await testConfig(this.o.confFile, this.o.command);
    // stop() while the configuration was being checked (the netboot leader stepped down): stay stopped.
    if (this.stopping) return;
    this.spawnChild();
  }

  private spawnChild(): void {
    const [cmd, ...pre] = this.o.command ?? ["dnsmasq"];
    const child = spawn(cmd!, [...pre, "--keep-in-foreground", `--conf-file=${this.o.confFile}`], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.startedAt = Date.now();
    const log = this.o.log;
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        log.info(line.replace(/^dnsmasq(-dhcp|-tftp)?(\[\d+\])?: /, ""));
        this.o.onLine?.(line);
      });
    }
    child.on("error", (err) => {
      log.error("dnsmasq could not be started", { error: String(err) });
    });
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = null;
      this.lastExit = signal ? `signal ${signal}` : `code ${code}`;
      if (this.stopping) return;
      // A child that ran for a while resets the backoff; one that dies at once backs off further.
      if (Date.now() - this.startedAt > 30_000) this.quickDeaths = 0;
      const delay = backoffDelay(this.quickDeaths++, { baseMs: this.o.minBackoffMs ?? 500, maxMs: this.o.maxBackoffMs ?? 30_000 });
      log.warn(`dnsmasq exited (${this.lastExit}); restarting in ${delay} ms`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.restarts++;
        if (!this.stopping) this.spawnChild();
      }, delay);
    });
  }

  /** Apply a tree change: restart for a new config, SIGHUP for removed or changed hosts, nothing for added ones (inotify). */
  async apply(changes: TreeChanges): Promise<void> {
    if (this.stopping) return;
    if (changes.configChanged) {
      await this.stopChild();
      await this.start();
    } else if (changes.hostsReload && this.child?.pid) {
      this.child.kill("SIGHUP");
    }
  }

  status(): DhcpBackendStatus {
    return { mode: "managed", running: !!this.child, pid: this.pid, restarts: this.restarts, lastExit: this.lastExit };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    await this.stopChild();
  }

  private async stopChild(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const wasStopping = this.stopping;
    this.stopping = true;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), 3000);
      child.once("exit", () => (clearTimeout(kill), resolve()));
      child.kill("SIGTERM");
    });
    this.child = null;
    this.stopping = wasStopping;
  }
}

/** `dnsmasq --test -C <file>`: dnsmasq's own syntax check. @throws Error with dnsmasq's message */
export async function testConfig(confFile: string, command: string[] = ["dnsmasq"]): Promise<void> {
  if (!fs.existsSync(confFile)) throw new Error(`dnsmasq configuration ${confFile} does not exist`);
  const [cmd, ...pre] = command;
  await new Promise<void>((resolve, reject) => {
    const p = spawn(cmd!, [...pre, "--test", `--conf-file=${confFile}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (b) => (out += b));
    p.stderr.on("data", (b) => (out += b));
    p.on("error", (err) =>
      reject(new Error(`cannot run ${cmd}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "not installed (apt-get install dnsmasq)" : String(err)}`)),
    );
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`dnsmasq --test refused ${confFile}: ${out.trim()}`))));
  });
}
