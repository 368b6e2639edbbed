/**
 * The package proxy's running part: follows the netboot settings (proxyMode managed / external / off), runs the
 * managed apt-cacher-ng on rackhandAddress():proxyPort (httpBaseUrl's host, else serverAddress) (restarted when address or port change), and puts each
 * upstream error a machine's download hit into that machine's running job log, naming the file.
 */
import path from "node:path";
import { packageProxyUrl, rackhandAddress, type NetbootSettings, type ProxyMode } from "../../lib/netboot";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { loadNetbootSettings } from "../netboot/settings";
import { AcngSupervisor, hostAptProxy, type AcngLogEntry, type AcngStats } from "./acng";
import { appendJobLines, runningJobByAddress } from "./job-lines";

export interface ProxyStatus {
  mode: ProxyMode;
  /** What installers and agents are told to use (null: mode off). */
  url: string | null;
  running: boolean;
  pid: number | null;
  error: string | null;
  upstreamProxy: string | null;
  stats: AcngStats | null;
}

export interface ProxyOptions {
  dataDir: string;
  command?: string[];
  pollMs?: number;
}

export class ProxyService {
  private acng: AcngSupervisor | null = null;
  private applied: string | null = null;
  private mode: ProxyMode = "off";
  private url: string | null = null;
  private error: string | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** The job-log writes of upstream errors, in order. */
  private entries: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | null = null;
  private upstreamProxy = hostAptProxy();

  constructor(
    private readonly d: Domain,
    private readonly o: ProxyOptions,
  ) {}

  get root(): string {
    return path.resolve(this.o.dataDir, "proxy");
  }

  async start(): Promise<void> {
    this.unsubscribe = this.d.bus.subscribe((e) => {
      if (e.type === "netboot.changed") void this.reconcile();
    });
    await this.reconcile();
  }

  /** Apply the current settings (serialised). Never throws: the error is kept in status(). */
  reconcile(): Promise<void> {
    this.chain = this.chain.then(async () => {
      let s: NetbootSettings;
      try {
        s = await loadNetbootSettings(storeOf(this.d));
      } catch (err) {
        this.error = err instanceof Error ? err.message : String(err);
        return;
      }
      this.mode = s.proxyMode;
      this.url = packageProxyUrl(s);
      const want = s.proxyMode === "managed" ? `${rackhandAddress(s)}:${s.proxyPort}` : null;
      if (want === this.applied && (!want || this.acng?.status().running)) return;
      await this.acng?.stop();
      this.acng = null;
      this.applied = null;
      this.error = null;
      if (!want) return;
      const acng = new AcngSupervisor({ root: this.root, bindAddress: rackhandAddress(s), port: s.proxyPort, upstreamProxy: this.upstreamProxy, command: this.o.command, log: this.d.log.child("apt-cacher-ng"), pollMs: this.o.pollMs });
      // One after the other, in the log's order; `flush()` waits for them.
      acng.onEntry((e) => {
        this.entries = this.entries.then(() => this.onEntry(e)).catch((err: unknown) => this.d.log.warn("package proxy error not added to the job log", { client: e.client, error: String(err) }));
      });
      try {
        await acng.start();
        this.acng = acng;
        this.applied = want;
      } catch (err) {
        this.error = err instanceof Error ? err.message : String(err);
        this.d.log.error("package proxy not started", { error: this.error });
      }
    });
    return this.chain;
  }

  /** An upstream error for a provisioning client: a line in its machine's running job log. */
  private async onEntry(e: AcngLogEntry): Promise<void> {
    if (e.kind !== "error") return;
    const job = await runningJobByAddress(this.d, e.client);
    if (!job) return;
    const file = e.path.split("/").pop() ?? e.path;
    await appendJobLines(this.d, job.jobId, job.machineId, [
      { ts: e.ts, stream: "stderr", text: `package proxy: upstream ${e.code ? `HTTP ${e.code}` : "error"} for ${file} (${e.path})` },
    ]);
  }

  /** Read the transfer log now (tests; the supervisor polls by itself). */
  poll(): void {
    this.acng?.poll();
  }

  /**
   * Read the transfer log now and wait until its upstream errors are in their jobs' logs: the installer log
   * receiver calls it before writing a failed install's reason, so the reason stays the log's last line.
   */
  async flush(): Promise<void> {
    this.poll();
    await this.entries;
  }

  status(): ProxyStatus {
    const st = this.acng?.status();
    return {
      mode: this.mode,
      url: this.url,
      running: !!st?.running,
      pid: st?.pid ?? null,
      error: this.error ?? st?.error ?? null,
      upstreamProxy: this.upstreamProxy,
      stats: this.acng?.stats() ?? null,
    };
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.chain;
    await this.acng?.stop();
    this.acng = null;
  }
}
