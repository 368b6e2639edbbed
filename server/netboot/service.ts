/**
 * The netboot module's running part: reconciles the boot tree from the database at start-up and after every
 * relevant bus event (debounced; incremental per machine; whole tree for settings/profile/bulk changes),
 * and drives the DHCP backend for the configured mode. Reconciles run one at a time.
 *
 * Several processes on one PostgreSQL: one of them owns the tree of the provisioning network, the holder of the
 * leader lease `netboot:provisioning` (leadership.ts). Only the leader writes the tree and runs the managed dnsmasq:
 * on gaining the lease it reconciles the whole tree from the database, then starts dnsmasq; on losing it (another took
 * over, or its own clock says the lease ran out without a renewal) it stops dnsmasq at once. A follower's
 * set_boot_target (`applyMachine`) asks the leader through the database (tree-requests.ts) and waits for its
 * confirmation. On SQLite the one process is always the owner.
 */
import fs from "node:fs";
import path from "node:path";
import type { LiveEvent } from "../../lib/live-events";
import { AGENT_PAYLOAD_FILE as PAYLOAD_FILE, type NetbootMode, type NetbootSettings } from "../../lib/netboot";
import type { Domain } from "../context";
import type { ProxyStatus } from "../proxy/service";
import { ExternalBackend, type DhcpBackend, type DhcpBackendStatus } from "./backend";
import { DnsmasqSupervisor } from "./dnsmasq";
import { AgentNonces } from "./agent-nonce";
import { InstallTokens } from "./install-token";
import { DhcpFirmwareObserver, recordBootSighting } from "./dhcp-firmware";
import type { LoaderInstaller, LoaderStatus } from "./loaders";
import { INSTALLER_RELEASES, seedInstallerProfile, syncInstallerFiles, type InstallerFilesStatus, type InstallerRelease } from "./installer-files";
import type { TreeChanges } from "./reconciler";
import { loadEffectiveNetbootSettings } from "./settings";
import { storeOf } from "../db/store";
import type { PgDb } from "../db/pg/client";
import { NetbootLeadership, type NetbootLeaderOptions, type NetbootLeadershipStatus } from "./leadership";
import { CONF_FILE, HOSTS_DIR, HOSTS_FILE, TFTP_DIR, type TreeContext } from "./tree";
import { TreeSync } from "./tree-sync";

export interface NetbootOptions {
  /** The tree goes to <dataDir>/netboot; HTTP boot files live in <dataDir>/http. */
  dataDir: string;
  /** Coalesce bus events for this long before reconciling (ms). */
  debounceMs?: number;
  /** How dnsmasq is started in managed mode (argument array), default ["dnsmasq"]. */
  dnsmasqCommand?: string[];
  /** Log line hook of the managed dnsmasq (tests). */
  onDnsmasqLine?: (line: string) => void;
  /** Where boot loaders come from (tests); default: Debian's package files. */
  loaderOptions?: import("./loaders").LoaderOptions;
  /** Installer packages whose files are placed under <dataDir>/http/installers (tests point these elsewhere). */
  installerReleases?: readonly InstallerRelease[];
  /** PostgreSQL only (ignored on SQLite, where this process always owns the tree): the leader lease. */
  leader?: NetbootLeaderOptions;
}

export type { NetbootLeaderOptions };

export interface NetbootStatus {
  mode: NetbootMode;
  backend: DhcpBackendStatus | null;
  lastError: string | null;
  lastReconcile: { at: number; ms: number; written: number; removed: number; full: boolean } | null;
  /** Reconciles run since the start (concurrent set_boot_target steps share one). */
  reconciles: number;
  treeDir: string;
  /** Which agent boot files are built under <dataDir>/http/ramdisk (npm run ramdisk [-- --debian]). */
  agentFiles: { ramdisk: boolean; debianRootfs: boolean };
  /** Boot loaders in the TFTP root, from Debian's packages (loaders.ts); a missing one carries its error. */
  loaders: LoaderStatus[];
  /** Installer packages placed in the HTTP tree at start-up (installer-files.ts). */
  installerFiles: InstallerFilesStatus[];
  /** The package proxy (server/proxy), added by the app. */
  packageProxy?: ProxyStatus | null;
  /** PostgreSQL: whether this process owns the tree (the leader lease); absent on SQLite (always the owner). */
  leadership?: NetbootLeadershipStatus;
}

/** Above this many dirty machines a full reconcile is cheaper than many partial ones. */
const FULL_THRESHOLD = 2000;

export class NetbootService {
  readonly root: string;
  readonly httpRoot: string;
  readonly tokens: InstallTokens;
  private readonly nonces: AgentNonces;
  private readonly tree: TreeSync;
  readonly loaders: LoaderInstaller;
  /** The agent payload checksum the tree's agent entries carry (undefined: no tree written yet). */
  private appliedPayload: string | null | undefined = undefined;
  private settings!: NetbootSettings;
  private backend: DhcpBackend | null = null;
  /** The mode whose backend runs; null until one was switched to successfully. */
  private appliedMode: NetbootMode | null = null;
  private dirty = new Set<number>();
  private fullPending = true;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** The reconcile queued behind the running one, not started yet (flush callers share it). */
  private queued: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private lastError: string | null = null;
  private lastReconcile: NetbootStatus["lastReconcile"] = null;
  private reconciles = 0;
  private installerFiles: InstallerFilesStatus[] = [];
  /** PostgreSQL: the leader lease and the followers' requests (null on SQLite, where this process always owns the tree). */
  private leadership: NetbootLeadership | null = null;
  /** The DHCP backend being stopped after a step-down. */
  private stepping: Promise<void> = Promise.resolve();

  constructor(
    private readonly d: Domain,
    private readonly o: NetbootOptions,
  ) {
    this.root = path.resolve(o.dataDir, "netboot");
    this.httpRoot = path.resolve(o.dataDir, "http");
    this.tree = new TreeSync(d, this.root, this.httpRoot, o.loaderOptions);
    this.loaders = this.tree.loaders;
    this.tokens = new InstallTokens(d.secrets.deriveKey("netboot install tokens"));
    this.nonces = AgentNonces.of(d);
  }

  /** Whether this process owns the tree now (SQLite: always; PostgreSQL: the lease's holder, by its own clock). */
  isLeader(): boolean {
    return this.leadership ? this.leadership.isLeader() : true;
  }

  /** Reconcile everything once, start the backend for the mode, then follow the bus. */
  async start(): Promise<void> {
    this.installerFiles = (this.o.installerReleases ?? INSTALLER_RELEASES).map((r) => syncInstallerFiles(this.httpRoot, r));
    for (const s of this.installerFiles) {
      if (s.error) this.d.log.warn("installer files not placed", { pkg: s.pkg, error: s.error });
      await seedInstallerProfile(this.d, s).catch((err: unknown) => this.d.log.warn("installer profile not seeded", { pkg: s.pkg, error: String(err) }));
    }
    this.unsubscribe = this.d.bus.subscribe((e) => this.onEvent(e));
    const store = storeOf(this.d);
    if (store.dialect === "postgres") {
      // On PostgreSQL the Store's db is drizzle's node-postgres database (store.ts pgStore).
      this.leadership = new NetbootLeadership(store.db as unknown as PgDb, this.d, this.o.leader ?? {}, {
        gained: () => {
          this.tree.forget(); // another leader may have written here meanwhile (a shared data directory)
          this.fullPending = true;
          void this.flush();
        },
        lost: () => void (this.stepping = this.stepDown()),
        requestsPending: () => void this.flush(),
      });
      await this.leadership.start();
      // Leading: the full reconcile gaining the lease asked for; following: the settings (status) only.
      await (this.isLeader() ? this.chain : this.flush());
      return;
    }
    this.fullPending = true;
    await this.flush();
  }

  /** Stop the DHCP backend now, without waiting for a reconcile in flight (it checks leadership before it starts one). */
  private async stepDown(): Promise<void> {
    const b = this.backend;
    this.backend = null;
    this.appliedMode = null;
    this.appliedPayload = undefined;
    await b?.stop().catch((err: unknown) => this.d.log.error("stopping the DHCP backend failed", { error: String(err) }));
  }

  private onEvent(e: LiveEvent): void {
    const protocol = this.leadership?.onEvent(e);
    if (protocol === "handled") return;
    // A follower asks for a machine's entries (the request itself is in the database: tree-requests.ts).
    if (protocol === "request" && e.type === "netboot.apply") this.dirty.add(e.machineId);
    else if (e.type === "machine.changed" || e.type === "machine.deleted") this.dirty.add(e.machineId);
    else if (e.type === "machines.bulk" || e.type === "os-profile.changed" || e.type === "netboot.changed") this.fullPending = true;
    else return;
    if (!this.timer) this.timer = setTimeout(() => ((this.timer = null), void this.flush()), this.o.debounceMs ?? 50);
  }

  /**
   * Reconcile what is pending now (serialised behind any running reconcile). Callers that come while a reconcile
   * waits to start share it: it reads everything marked before it starts. (One reconcile per call queued 100
   * concurrent set_boot_target steps behind each other: ~1 s each in a 100-machine batch wave.)
   * Never throws: errors are logged and kept in status().
   */
  flush(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.chain.then(() => {
      this.queued = null;
      return this.reconcile();
    });
    this.queued = next;
    this.chain = next;
    return next;
  }

  /**
   * Bring one machine's boot entries up to date now (the orchestrator's set_boot_target step). On the leader (or on
   * SQLite) the tree is written here; on a follower the leader is asked through the database and this waits for its
   * confirmation (tree-requests.ts).
   * @throws Error with the reconcile's error when the tree could not be written, or when no leader confirmed in time
   */
  async applyMachine(machineId: number): Promise<void> {
    if (this.isLeader()) {
      this.dirty.add(machineId);
      await this.flush();
      if (this.lastError) throw new Error(`boot tree not written: ${this.lastError}`);
      if (this.isLeader()) return;
      // Leadership was lost meanwhile: what was written here may never be served; ask the next leader.
    }
    if (!this.leadership) throw new Error("boot tree not written: this process does not own it");
    const outcome = await this.leadership.request(machineId);
    if (!outcome.ok) throw new Error(`boot tree not written by the netboot leader: ${outcome.message}`);
  }

  /** Resolves when no event is waiting for its debounce and no reconcile runs. */
  async whenIdle(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      await this.flush();
    }
    await this.chain;
  }

  status(): NetbootStatus {
    const built = (f: string) => fs.existsSync(path.join(this.httpRoot, "ramdisk", f));
    return {
      ...(this.leadership && { leadership: this.leadership.status() }),
      mode: this.settings?.mode ?? "off",
      backend: this.backend?.status() ?? null,
      lastError: this.lastError,
      lastReconcile: this.lastReconcile,
      reconciles: this.reconciles,
      treeDir: this.root,
      // A RAM disk in two parts needs its payload too (the manifest names it).
      agentFiles: { ramdisk: built("vmlinuz") && built("initrd.img") && (this.agentPayload() === null || built(PAYLOAD_FILE)), debianRootfs: built("rootfs.tar.zst") },
      loaders: this.loaders.status(),
      installerFiles: this.installerFiles,
    };
  }

  context(settings: NetbootSettings): TreeContext {
    return {
      settings,
      paths: {
        hostsFile: path.join(this.root, HOSTS_FILE),
        hostsDir: path.join(this.root, HOSTS_DIR),
        tftpRoot: path.join(this.root, TFTP_DIR),
        leaseFile: path.join(this.root, "dnsmasq.leases"),
        pidFile: path.join(this.root, "dnsmasq.pid"),
      },
      runAs: process.getuid?.() === 0 ? "root" : null,
      installToken: (id, session) => this.tokens.token(id, session),
      agentNonce: (id, session) => this.nonces.nonce(id, session),
      agentPayload: this.agentPayload(),
    };
  }

  /**
   * The agent payload named in <http>/ramdisk/manifest.json (written last by the RAM disk builder), or null when
   * the RAM disk has none (built whole, or not built). An unreadable manifest is null, too: the boot entries then
   * carry no payload, and a stage 1 without the agent says so on the console.
   */
  agentPayload(): { file: string; sha256: string } | null {
    try {
      const m = JSON.parse(fs.readFileSync(path.join(this.httpRoot, "ramdisk", "manifest.json"), "utf8")) as { files?: { name: string; sha256: string }[] };
      const f = m.files?.find((x) => x.name === PAYLOAD_FILE);
      return f ? { file: f.name, sha256: f.sha256 } : null;
    } catch {
      return null;
    }
  }

  get tftpRoot(): string {
    return path.join(this.root, TFTP_DIR);
  }

  get confFile(): string {
    return path.join(this.root, CONF_FILE);
  }

  private async reconcile(): Promise<void> {
    const t0 = performance.now();
    this.reconciles++;
    const leading = this.isLeader();
    if (!leading) {
      // A follower writes nothing: the leader's full reconcile covers what changed meanwhile.
      this.fullPending = false;
      this.dirty.clear();
      try {
        this.settings = await loadEffectiveNetbootSettings(storeOf(this.d));
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
      }
      return;
    }
    // PostgreSQL: the followers' requests, read before the machines, so the rows read below are at least as new as each.
    const requests = (await this.leadership?.pending()) ?? null;
    for (const id of requests?.pending.keys() ?? []) this.dirty.add(id);
    const full = this.fullPending || this.dirty.size > FULL_THRESHOLD;
    const ids = [...this.dirty];
    this.fullPending = false;
    this.dirty.clear();
    let changes: TreeChanges | null = null;
    try {
      const settings = await loadEffectiveNetbootSettings(storeOf(this.d));
      const modeChanged = settings.mode !== this.appliedMode;
      this.settings = settings;
      if (settings.mode !== "off") {
        const ctx = this.context(settings);
        // A rebuilt RAM disk changes every agent entry's payload checksum: rewrite them all.
        const payload = ctx.agentPayload?.sha256 ?? null;
        const all = full || payload !== this.appliedPayload;
        changes = all ? await this.reconcileAll(ctx) : await this.reconcileSome(ids, ctx);
        this.appliedPayload = payload;
      }
      if (!this.isLeader()) throw new Error("lost the netboot leader lease during the reconcile");
      if (modeChanged) await this.switchBackend(settings.mode);
      else if (changes && this.backend) await this.backend.apply(changes);
      if (!this.isLeader()) await this.stepDown(); // stepped down while dnsmasq was being (re)started
      this.lastError = null;
      const ms = performance.now() - t0;
      this.lastReconcile = { at: Date.now(), ms, written: changes?.written.length ?? 0, removed: changes?.removed.length ?? 0, full };
      if (changes && (changes.written.length || changes.removed.length)) {
        this.d.log.debug("boot tree reconciled", { full, written: changes.written.length, removed: changes.removed.length, ms: Math.round(ms) });
      }
      await this.leadership?.settle(requests, null);
    } catch (err) {
      // The tree on disk is the previous one; retry the same scope with the next event.
      if (full) this.fullPending = true;
      else for (const id of ids) this.dirty.add(id);
      this.lastError = err instanceof Error ? err.message : String(err);
      this.d.log.error("boot tree reconcile failed; previous tree kept", { error: this.lastError });
      await this.leadership?.settle(requests, this.lastError);
    }
  }

  /** Whole tree from all rows. @throws AppError VALIDATION before anything is written */
  reconcileAll(ctx: TreeContext): Promise<TreeChanges> {
    return this.tree.all(ctx);
  }

  /** Only the given machines' files (a deleted machine has none left). @throws AppError VALIDATION */
  reconcileSome(ids: number[], ctx: TreeContext): Promise<TreeChanges> {
    return this.tree.some(ids, ctx);
  }

  private async switchBackend(mode: NetbootMode): Promise<void> {
    await this.backend?.stop();
    this.backend = null;
    this.appliedMode = null;
    if (mode === "managed") {
      const firmware = new DhcpFirmwareObserver((s) => {
        recordBootSighting(this.d, s).catch((err: unknown) => this.d.log.warn("could not record a machine's boot firmware", { mac: s.mac, error: String(err) }));
      });
      const onLine = (l: string) => (firmware.line(l), this.o.onDnsmasqLine?.(l));
      const b = new DnsmasqSupervisor({ confFile: this.confFile, log: this.d.log.child("dnsmasq"), command: this.o.dnsmasqCommand, onLine });
      this.backend = b;
      await b.start();
      if (this.backend !== b) {
        // Stepped down while dnsmasq started (stepDown stopped it already, or is stopping it).
        await b.stop();
        return;
      }
    } else if (mode === "external") {
      this.backend = new ExternalBackend(this.d.log.child("netboot"));
    }
    this.appliedMode = mode;
    this.d.log.info(`netboot mode ${mode}`, { tree: this.root });
  }

  /**
   * Stop following the bus and stop the DHCP backend. On PostgreSQL the lease is given up so another process takes
   * over at once; `{ releaseLease: false }` lets it lapse instead, as when the process dies (tests of the takeover).
   */
  async stop(opts: { releaseLease?: boolean } = {}): Promise<void> {
    this.unsubscribe?.();
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const leadership = this.leadership;
    if (leadership && opts.releaseLease === false) {
      await leadership.stop(false);
      await this.stepping;
    } else if (leadership) {
      // A reconcile still running sees it no longer leads and starts nothing; the lease is given up only once the
      // backend is down, so the next leader's dnsmasq never overlaps this one's.
      leadership.resign();
      await this.chain;
      await this.backend?.stop();
      this.backend = null;
      await leadership.stop(true);
      return;
    }
    await this.chain;
    await this.backend?.stop();
    this.backend = null;
  }
}
