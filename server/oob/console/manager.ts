/**
 * Serial consoles shared by every viewer: one driver console stream (e.g. one `ipmitool sol activate`) per
 * machine while anyone watches, plus a grace period after the last viewer leaves. Output goes to every viewer
 * (through listeners: the socket gateway) and to the transcript. One viewer holds the keyboard at a time.
 * While anyone watches, a console that fails to open or drops (the BMC busy with a power cycle, a BMC reset, the
 * network) is reopened with backoff (1 s doubling to 15 s); wrong credentials are not retried.
 *
 * With a ConsoleCluster (PostgreSQL, several processes; cluster.ts and docs/ARCHITECTURE.md "Console sessions
 * across processes") the stream lives on one process, the owner (lease `console:<machine>`, taken where the first
 * viewer opens it). The others are viewer processes: they tell the owner how many viewers they have (renewing its
 * reason to stay open), mirror its output (a late joiner's recent output comes from the owner), and forward the
 * keys of the keyboard holder. The keyboard is a lease too, so it has one holder across all processes. When the
 * owner dies its lease lapses and a process with viewers takes the stream over.
 */
import { AppError } from "../../../lib/errors";
import { backoffDelay } from "../../../lib/retry";
import type { Domain } from "../../context";
import { storeOf } from "../../db/store";
import { recordStoreEvent } from "../../events/audit";
import { loadBmc } from "../bmc-state";
import { BmcError } from "../errors";
import { ConsoleCluster, type ClusterOptions } from "./cluster";
import { checkMachineId, checkViewerId, checkViewerName, type ConsoleStatus, type KeyboardHolder } from "./messages";
import { ConsoleRelay } from "./relay";
import { forMessage, keepRecent, newSession, viewersOf, type ConsoleMessage, type Session } from "./session";
import { Transcript } from "./transcript";

export type { ConsoleMessage, ConsoleStatus };

const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 15_000;

export class ConsoleManager {
  private readonly sessions = new Map<number, Session>();
  private readonly listeners = new Set<(m: ConsoleMessage) => void>();
  private ticker: NodeJS.Timeout | undefined;
  private readonly relay: ConsoleRelay | undefined;
  private halted = false;
  private ticking: Promise<void> | undefined;

  /** `cluster`: the PostgreSQL link (several processes); absent, this process is alone (SQLite). */
  constructor(
    private readonly d: Domain,
    readonly cluster?: ConsoleCluster,
  ) {
    this.relay = cluster
      ? new ConsoleRelay(cluster, {
          sessions: this.sessions,
          log: d.log,
          halted: () => this.halted,
          emit: (m) => this.emit(m),
          status: (id) => this.status(id),
          open: (s) => this.open(s),
          publishStatus: (s) => this.publishStatus(s),
          stopStream: (s, why) => this.stopStream(s, why),
          graceIfUnwatched: (s) => this.graceIfUnwatched(s),
        })
      : undefined;
  }

  /** On a cluster: connect its link (resolves once listening) and start renewing; alone: nothing to do. */
  async start(): Promise<void> {
    const c = this.cluster;
    const relay = this.relay;
    if (!c || !relay || this.ticker) return;
    c.onReconnect = () => {
      for (const s of this.sessions.values()) if (!s.owned) relay.sendWatch(s);
    };
    await c.start((m) => relay.receive(m));
    this.ticker = setInterval(() => void this.tick(), c.renewMs);
    this.ticker.unref();
  }

  subscribe(l: (m: ConsoleMessage) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit(m: ConsoleMessage) {
    for (const l of this.listeners) l(m);
  }

  status(machineId: number): ConsoleStatus {
    const s = this.sessions.get(machineId);
    if (!s) return { machineId, state: "closed", holder: null, viewers: 0 };
    if (!s.owned) return s.ownerStatus ?? { machineId, state: "opening", holder: s.holder?.name ?? null, viewers: s.viewers.size };
    return {
      machineId,
      state: s.state,
      holder: s.holder?.name ?? null,
      viewers: viewersOf(s),
      ...(s.error ? { error: s.error } : {}),
      ...(s.retry && s.retryInS !== undefined ? { retryInS: s.retryInS } : {}),
    };
  }

  private publishStatus(s: Session) {
    const status = this.status(s.machineId);
    this.emit({ type: "status", status });
    const c = this.cluster;
    if (c && s.owned && this.sessions.get(s.machineId) === s) {
      this.relay?.flush(s);
      c.send({ t: "st", m: s.machineId, o: c.owner, e: s.epoch, st: forMessage(status) });
    }
  }

  /**
   * Add a viewer; opens the console if it is not open. Resolves with the status and recent output.
   * @throws AppError MACHINE_NOT_FOUND, BMC_NOT_CONFIGURED, VALIDATION (a malformed machine id, viewer id or name)
   */
  async join(machineId: number, viewerId: string, name: string): Promise<{ status: ConsoleStatus; recent: Buffer }> {
    checkMachineId(machineId);
    checkViewerId(viewerId);
    checkViewerName(name);
    await loadBmc(this.d, machineId); // fail fast for unknown machines / no BMC
    let s = this.sessions.get(machineId);
    if (!s) {
      s = newSession(machineId, !this.cluster);
      this.sessions.set(machineId, s);
    }
    clearTimeout(s.grace);
    s.grace = undefined;
    s.viewers.set(viewerId, name);
    if (!s.owned) await this.relay?.claim(s);
    if (s.owned) {
      if (!s.stream && !s.opening) s.opening = this.open(s);
      this.publishStatus(s);
      await s.opening;
    } else {
      this.relay?.sendWatch(s);
      this.emit({ type: "status", status: this.status(machineId) });
      if (!s.synced) await this.relay?.requestSnapshot(s);
    }
    return { status: this.status(machineId), recent: Buffer.concat(s.recent) };
  }

  private async open(s: Session): Promise<void> {
    s.state = "opening";
    s.error = undefined;
    try {
      const { driver, target } = await loadBmc(this.d, s.machineId);
      driver.console.validate(target);
      const cfg = this.d.oob.config;
      s.transcript ??= new Transcript(cfg.consoleDir, s.machineId, cfg.transcriptMaxBytes, cfg.transcriptKeep);
      const stream = await driver.console.open(target);
      if (!s.owned || this.sessions.get(s.machineId) !== s) {
        // Ownership went elsewhere (or the session closed) while the BMC answered: this stream is nobody's.
        await stream.close();
        return;
      }
      s.stream = stream;
      s.state = "open";
      s.failures = 0;
      s.transcript.append(`\r\n--- console opened ${new Date().toISOString()} ---\r\n`);
      stream.onData((chunk) => {
        if (s.stream !== stream) return;
        s.transcript?.append(chunk);
        keepRecent(s, chunk);
        this.emit({ type: "data", machineId: s.machineId, data: chunk });
        this.relay?.queueOutput(s, chunk);
      });
      stream.onClose((reason) => {
        if (s.stream !== stream) return;
        s.stream = undefined;
        s.state = "closed";
        s.transcript?.append(`\r\n--- console closed ${new Date().toISOString()}: ${reason} ---\r\n`);
        this.scheduleReopen(s);
        this.publishStatus(s);
      });
    } catch (err) {
      s.state = "error";
      s.error = err instanceof Error ? err.message : String(err);
      this.d.log.warn("console open failed", { machineId: s.machineId, error: s.error });
      // Wrong credentials or a BMC without SOL will not fix themselves; anything else may (a busy BMC).
      const retryable = err instanceof BmcError ? err.kind !== "auth" && err.kind !== "unsupported" : !(err instanceof AppError);
      if (retryable) this.scheduleReopen(s);
    } finally {
      s.opening = undefined;
      this.publishStatus(s);
    }
  }

  /** Reopen later while anyone still watches this session (backoff doubles per failure, capped). */
  private scheduleReopen(s: Session): void {
    if (viewersOf(s) === 0 || s.retry || !s.owned || this.sessions.get(s.machineId) !== s) return;
    const delay = backoffDelay(s.failures, { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS });
    s.failures++;
    s.retryInS = Math.round(delay / 1000);
    s.retry = setTimeout(() => {
      s.retry = undefined;
      s.retryInS = undefined;
      if (viewersOf(s) > 0 && s.owned && !s.stream && !s.opening && this.sessions.get(s.machineId) === s) s.opening = this.open(s);
    }, delay);
    s.retry.unref();
  }

  /** Remove a viewer (releasing the keyboard it held); the last one out starts the grace period, after which the console closes. */
  async leave(machineId: number, viewerId: string): Promise<void> {
    const s = this.sessions.get(machineId);
    if (!s || !s.viewers.has(viewerId)) return;
    if ((this.cluster ? s.mine?.viewerId : s.holder?.viewerId) === viewerId) await this.release(machineId, viewerId);
    s.viewers.delete(viewerId);
    if (!s.owned) this.relay?.sendWatch(s);
    this.graceIfUnwatched(s);
    if (s.owned) this.publishStatus(s);
    else this.emit({ type: "status", status: this.status(machineId) });
  }

  /** Start the grace period when nobody watches any more (owner: on any process; viewer process: here). */
  private graceIfUnwatched(s: Session) {
    const watched = s.owned ? viewersOf(s) : s.viewers.size;
    if (watched > 0) {
      clearTimeout(s.grace);
      s.grace = undefined;
    } else if (!s.grace) {
      s.grace = setTimeout(() => void this.close(s.machineId), this.d.oob.config.consoleGraceMs);
      s.grace.unref();
    }
  }

  /** Take the keyboard (from whoever held it, on any process). @throws AppError CONSOLE_NOT_HELD */
  async take(machineId: number, viewerId: string, name: string): Promise<void> {
    const s = this.sessions.get(machineId);
    if (!s || !s.viewers.has(viewerId)) throw new AppError("CONSOLE_NOT_HELD", "Open the console before taking the keyboard");
    const c = this.cluster;
    const holder: KeyboardHolder = { process: c?.owner ?? "local", viewerId, name: checkViewerName(name) };
    if (c) {
      await c.takeKeyboard(machineId, holder);
      s.mine = holder;
    }
    s.holder = holder;
    if (c) c.send({ t: "k", m: machineId, o: c.owner });
    this.statusChangedHere(s);
    // The audit row is written after the keyboard changed hands, by the process where it did (once); a database
    // error is logged, the keyboard stays taken.
    const store = storeOf(this.d);
    void recordStoreEvent(store, store.db, { actor: `user:${name}`, machineId, kind: "console.keyboard", message: `${name} took the console keyboard` }).then(
      (ev) => this.d.bus.publish({ type: "event.created", event: ev }),
      (err) => this.d.log.error("console: keyboard event not recorded", { machineId, error: String(err) }),
    );
  }

  /** Give the keyboard up, if this viewer holds it. */
  async release(machineId: number, viewerId: string): Promise<void> {
    const s = this.sessions.get(machineId);
    const c = this.cluster;
    if (!s) return;
    if (c) {
      if (s.mine?.viewerId !== viewerId) return;
      const mine = s.mine;
      s.mine = null;
      await c.releaseKeyboard(machineId, mine);
      if (s.holder?.viewerId === viewerId && s.holder.process === c.owner) s.holder = null;
      c.send({ t: "k", m: machineId, o: c.owner });
    } else {
      if (s.holder?.viewerId !== viewerId) return;
      s.holder = null;
    }
    this.statusChangedHere(s);
  }

  /** The keyboard changed on this process: the owner publishes; a viewer process shows it here until the owner's status comes. */
  private statusChangedHere(s: Session) {
    if (s.owned) return this.publishStatus(s);
    if (s.ownerStatus) s.ownerStatus = { ...s.ownerStatus, holder: s.holder?.name ?? null };
    this.emit({ type: "status", status: this.status(s.machineId) });
  }

  /** Keystrokes from the viewer holding the keyboard. @throws AppError CONSOLE_NOT_HELD */
  async input(machineId: number, viewerId: string, data: string): Promise<void> {
    const s = this.sessions.get(machineId);
    const c = this.cluster;
    if (!c) {
      if (!s?.stream || s.holder?.viewerId !== viewerId) throw new AppError("CONSOLE_NOT_HELD", "Take the keyboard first");
      s.stream.write(data);
      return;
    }
    const name = s?.viewers.get(viewerId);
    if (!s || name === undefined) throw new AppError("CONSOLE_NOT_HELD", "Take the keyboard first");
    if (this.status(machineId).state !== "open") throw new AppError("CONSOLE_NOT_HELD", "The console is not open");
    // Sent to the owner (this process, too, receives its own message) only while this viewer holds the keyboard lease.
    if (!(await c.sendKeys(machineId, { process: c.owner, viewerId, name }, Buffer.from(data, "utf8")))) throw new AppError("CONSOLE_NOT_HELD", "Take the keyboard first");
  }

  async close(machineId: number): Promise<void> {
    const s = this.sessions.get(machineId);
    if (!s || s.viewers.size > 0 || (s.owned && viewersOf(s) > 0)) return;
    this.sessions.delete(machineId);
    clearTimeout(s.grace);
    clearTimeout(s.retry);
    s.retry = undefined;
    s.snapshot?.resolve();
    const c = this.cluster;
    if (!s.owned || !c) return this.stopStream(s, "no viewers");
    await this.stopStream(s, "no viewers");
    // Nobody watches anywhere: the lease is free for the next first viewer, then the others learn it (a viewer who
    // came meanwhile on another process makes that process claim the console at once).
    await c.releaseConsole(machineId).catch((err: unknown) => this.d.log.warn("console: releasing the console lease failed", { machineId, error: String(err) }));
    c.send({ t: "st", m: machineId, o: c.owner, e: s.epoch, st: { machineId, state: "closed", holder: null, viewers: 0 } });
  }

  private async stopStream(s: Session, why: string): Promise<void> {
    await s.opening;
    this.relay?.flush(s);
    const stream = s.stream;
    s.stream = undefined;
    if (stream) {
      s.transcript?.append(`\r\n--- console closed ${new Date().toISOString()}: ${why} ---\r\n`);
      await stream.close();
    }
  }

  /** Close every console here (a stopping process), then the cluster link. */
  async closeAll(): Promise<void> {
    clearInterval(this.ticker);
    this.ticker = undefined;
    for (const s of this.sessions.values()) {
      if (this.cluster && s.mine) await this.cluster.releaseKeyboard(s.machineId, s.mine).catch(() => false);
      s.mine = null;
      s.viewers.clear();
      s.remote.clear();
      if (!s.owned) this.relay?.sendWatch(s);
    }
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id)));
    await this.cluster?.stop();
  }

  /**
   * Stop at once, releasing nothing and telling nobody: what a process killed with SIGKILL leaves behind (its
   * leases lapse). For takeover tests; streams are closed so no child outlives the test.
   */
  async halt(): Promise<void> {
    this.halted = true;
    clearInterval(this.ticker);
    this.ticker = undefined;
    await this.cluster?.stop();
    for (const s of this.sessions.values()) {
      clearTimeout(s.grace);
      clearTimeout(s.retry);
      clearTimeout(s.batchTimer);
      const stream = s.stream;
      s.stream = undefined;
      await stream?.close();
    }
    this.sessions.clear();
  }

  /**
   * One round of the cluster's upkeep (every renewMs; tests call it; relay.ts): the owner renews its lease, forgets viewers
   * not reported lately, re-reads the keyboard and publishes its status (the others' sign of life); a viewer process
   * reports its viewers, renews the keyboard lease of its viewer, notices a silent owner and tries to take over.
   */
  async tick(): Promise<void> {
    // A slow database must not pile renewals up: a tick still running makes the next one wait for it.
    if (this.ticking) return this.ticking;
    this.ticking = (this.relay?.upkeep() ?? Promise.resolve()).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /** Is a console child running for this machine? (tests, metrics) */
  isOpen(machineId: number): boolean {
    return !!this.sessions.get(machineId)?.stream;
  }

}

/**
 * The console manager of a process: alone (SQLite, or no database URL), or on a cluster of processes sharing the
 * PostgreSQL at `databaseUrl` (the store must be that database's). Call `await start()` before serving, `closeAll()` at
 * the end.
 */
export function createConsoleManager(d: Domain, opts: { databaseUrl?: string; owner: string } & Partial<Omit<ClusterOptions, "url" | "owner">>): ConsoleManager {
  const store = storeOf(d);
  if (store.dialect !== "postgres" || !opts.databaseUrl) return new ConsoleManager(d);
  const { databaseUrl, ...rest } = opts;
  return new ConsoleManager(d, new ConsoleCluster(store.db, { ...rest, url: databaseUrl, log: opts.log ?? d.log.child("console") }));
}
