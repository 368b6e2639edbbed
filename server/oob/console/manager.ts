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
import type { ConsoleStream } from "../types";
import { ConsoleCluster, type ClusterOptions } from "./cluster";
import { checkMachineId, checkViewerId, checkViewerName, CHUNK_BYTES, type ClusterMessage, type ConsoleStatus, type KeyboardHolder } from "./messages";
import { Transcript } from "./transcript";

export type { ConsoleStatus };

export type ConsoleMessage = { type: "data"; machineId: number; data: Buffer } | { type: "status"; status: ConsoleStatus };

interface Session {
  machineId: number;
  stream?: ConsoleStream;
  opening?: Promise<void>;
  /** This process's viewers: id → user name. */
  viewers: Map<string, string>;
  /** The keyboard holder (on a cluster: as the owner last read the lease, or as this process set it). */
  holder: KeyboardHolder | null;
  state: ConsoleStatus["state"];
  error?: string;
  grace?: NodeJS.Timeout;
  retry?: NodeJS.Timeout;
  retryInS?: number;
  /** Failed opens in a row (the backoff exponent). */
  failures: number;
  /** Recent output, so a viewer who joins late sees the screen so far (a viewer process: the owner's, mirrored). */
  recent: Buffer[];
  recentBytes: number;
  transcript?: Transcript;
  // --- on a cluster ---
  /** This process holds the stream (always true without a cluster). */
  owned: boolean;
  /** Owner: the console lease's epoch, and the number of the last output message sent in it. */
  epoch: number;
  seq: number;
  /** Owner: until when its lease surely runs, by this process's clock (counted from before the renewal was sent). */
  validUntil: number;
  /** Owner: viewers on other processes, by process, with when they last said so. */
  remote: Map<string, { n: number; at: number }>;
  /** Owner: output waiting to be sent. */
  batch: Buffer[];
  batchBytes: number;
  batchTimer?: NodeJS.Timeout;
  /** Viewer process: the owner's last status, epoch, output message number, and when it was last heard. */
  ownerStatus?: ConsoleStatus;
  ownerName?: string;
  ownerEpoch: number;
  lastSeq: number;
  heardAt: number;
  /** Viewer process: `recent` mirrors the owner's output (its recent output arrived, or was waited for). */
  synced: boolean;
  snapshot?: Snapshot;
  claiming?: Promise<void>;
  /** The keyboard holder when it is one of this process's viewers (this process renews its lease). */
  mine: KeyboardHolder | null;
}

/** A late joiner's request for the owner's recent output, with the output that arrived meanwhile. */
interface Snapshot {
  r: number;
  parts: string[];
  held: Extract<ClusterMessage, { t: "d" }>[];
  done: Promise<void>;
  resolve: () => void;
}

const RECENT_MAX = 64 * 1024;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 15_000;

export class ConsoleManager {
  private readonly sessions = new Map<number, Session>();
  private readonly listeners = new Set<(m: ConsoleMessage) => void>();
  private ticker: NodeJS.Timeout | undefined;
  private reqId = 0;
  private halted = false;
  private ticking: Promise<void> | undefined;

  /** `cluster`: the PostgreSQL link (several processes); absent, this process is alone (SQLite). */
  constructor(
    private readonly d: Domain,
    readonly cluster?: ConsoleCluster,
  ) {}

  /** On a cluster: connect its link (resolves once listening) and start renewing; alone: nothing to do. */
  async start(): Promise<void> {
    const c = this.cluster;
    if (!c || this.ticker) return;
    c.onReconnect = () => {
      for (const s of this.sessions.values()) if (!s.owned) this.sendWatch(s);
    };
    await c.start((m) => this.receive(m));
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
      viewers: this.viewersOf(s),
      ...(s.error ? { error: s.error } : {}),
      ...(s.retry && s.retryInS !== undefined ? { retryInS: s.retryInS } : {}),
    };
  }

  /** Viewers of a session on every process (owner: its own and those other processes reported lately). */
  private viewersOf(s: Session): number {
    let n = s.viewers.size;
    for (const r of s.remote.values()) n += r.n;
    return n;
  }

  private publishStatus(s: Session) {
    const status = this.status(s.machineId);
    this.emit({ type: "status", status });
    const c = this.cluster;
    if (c && s.owned && this.sessions.get(s.machineId) === s) {
      this.flush(s);
      c.send({ t: "st", m: s.machineId, o: c.owner, e: s.epoch, st: forMessage(status) });
    }
  }

  private newSession(machineId: number): Session {
    return {
      machineId,
      viewers: new Map(),
      holder: null,
      state: "closed",
      failures: 0,
      recent: [],
      recentBytes: 0,
      owned: !this.cluster,
      epoch: 0,
      seq: 0,
      validUntil: 0,
      remote: new Map(),
      batch: [],
      batchBytes: 0,
      ownerEpoch: 0,
      lastSeq: 0,
      heardAt: 0,
      synced: false,
      mine: null,
    };
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
      s = this.newSession(machineId);
      this.sessions.set(machineId, s);
    }
    clearTimeout(s.grace);
    s.grace = undefined;
    s.viewers.set(viewerId, name);
    if (!s.owned) await this.claim(s);
    if (s.owned) {
      if (!s.stream && !s.opening) s.opening = this.open(s);
      this.publishStatus(s);
      await s.opening;
    } else {
      this.sendWatch(s);
      this.emit({ type: "status", status: this.status(machineId) });
      if (!s.synced) await this.requestSnapshot(s);
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
        this.keepRecent(s, chunk);
        this.emit({ type: "data", machineId: s.machineId, data: chunk });
        if (this.cluster) this.queueOutput(s, chunk);
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

  private keepRecent(s: Session, chunk: Buffer) {
    s.recent.push(chunk);
    s.recentBytes += chunk.length;
    while (s.recentBytes > RECENT_MAX && s.recent.length > 1) s.recentBytes -= s.recent.shift()!.length;
  }

  /** Reopen later while anyone still watches this session (backoff doubles per failure, capped). */
  private scheduleReopen(s: Session): void {
    if (this.viewersOf(s) === 0 || s.retry || !s.owned || this.sessions.get(s.machineId) !== s) return;
    const delay = backoffDelay(s.failures, { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS });
    s.failures++;
    s.retryInS = Math.round(delay / 1000);
    s.retry = setTimeout(() => {
      s.retry = undefined;
      s.retryInS = undefined;
      if (this.viewersOf(s) > 0 && s.owned && !s.stream && !s.opening && this.sessions.get(s.machineId) === s) s.opening = this.open(s);
    }, delay);
    s.retry.unref();
  }

  /** Remove a viewer (releasing the keyboard it held); the last one out starts the grace period, after which the console closes. */
  async leave(machineId: number, viewerId: string): Promise<void> {
    const s = this.sessions.get(machineId);
    if (!s || !s.viewers.has(viewerId)) return;
    if ((this.cluster ? s.mine?.viewerId : s.holder?.viewerId) === viewerId) await this.release(machineId, viewerId);
    s.viewers.delete(viewerId);
    if (!s.owned) this.sendWatch(s);
    this.graceIfUnwatched(s);
    if (s.owned) this.publishStatus(s);
    else this.emit({ type: "status", status: this.status(machineId) });
  }

  /** Start the grace period when nobody watches any more (owner: on any process; viewer process: here). */
  private graceIfUnwatched(s: Session) {
    const watched = s.owned ? this.viewersOf(s) : s.viewers.size;
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
    if (!s || s.viewers.size > 0 || (s.owned && this.viewersOf(s) > 0)) return;
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
    this.flush(s);
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
      if (this.cluster && !s.owned) this.sendWatch(s);
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

  /** Is a console child running for this machine? (tests, metrics) */
  isOpen(machineId: number): boolean {
    return !!this.sessions.get(machineId)?.stream;
  }

  // --- across processes ---

  /** Try to become the owner of a session's stream (one attempt at a time per session). */
  private claim(s: Session): Promise<void> {
    const c = this.cluster;
    if (!c || s.owned) return Promise.resolve();
    s.claiming ??= (async () => {
      const sentAt = Date.now();
      try {
        const lease = await c.claimConsole(s.machineId);
        if (!lease.held) {
          s.ownerName = lease.holder ?? undefined;
          return;
        }
        if (this.sessions.get(s.machineId) !== s || s.viewers.size === 0 || this.halted) {
          await c.releaseConsole(s.machineId); // nobody here watches any more
          return;
        }
        s.owned = true;
        s.epoch = lease.epoch;
        s.seq = 0;
        s.validUntil = sentAt + c.leaseMs;
        s.remote.clear();
        s.ownerStatus = undefined;
        s.ownerName = c.owner;
        // What this process mirrored stays the recent output; a late joiner waiting for it has it now.
        s.synced = true;
        this.finishSnapshot(s);
        s.holder = await c.readKeyboard(s.machineId).catch(() => s.holder);
        if (!s.stream && !s.opening) s.opening = this.open(s);
        this.publishStatus(s);
        await s.opening;
      } catch (err) {
        this.d.log.warn("console: claiming the console lease failed", { machineId: s.machineId, error: String(err) });
      }
    })().finally(() => (s.claiming = undefined));
    return s.claiming;
  }

  /** The owner lost its lease (another process has it, or the database did not confirm it in time): stop the stream. */
  private async demote(s: Session, why: string): Promise<void> {
    if (!s.owned) return;
    this.d.log.warn("console: no longer the owner of this console", { machineId: s.machineId, why });
    s.owned = false;
    clearTimeout(s.retry);
    s.retry = undefined;
    s.remote.clear();
    s.ownerEpoch = s.epoch;
    s.lastSeq = s.seq;
    s.synced = true;
    s.heardAt = Date.now();
    s.ownerStatus = { machineId: s.machineId, state: "opening", holder: s.holder?.name ?? null, viewers: s.viewers.size, error: `This process lost the console (${why}); it is reopened elsewhere` };
    this.emit({ type: "status", status: this.status(s.machineId) });
    await this.stopStream(s, why);
  }

  private sendWatch(s: Session) {
    const c = this.cluster;
    if (c && !s.owned) c.send({ t: "w", m: s.machineId, o: c.owner, n: s.viewers.size });
  }

  /** Owner: output waits up to batchMs (and at most CHUNK_BYTES) before it is sent to the other processes. */
  private queueOutput(s: Session, chunk: Buffer) {
    const c = this.cluster!;
    s.batch.push(chunk);
    s.batchBytes += chunk.length;
    if (c.batchMs === 0 || s.batchBytes >= CHUNK_BYTES) return this.flush(s);
    if (!s.batchTimer) {
      s.batchTimer = setTimeout(() => this.flush(s), c.batchMs);
      s.batchTimer.unref();
    }
  }

  private flush(s: Session) {
    clearTimeout(s.batchTimer);
    s.batchTimer = undefined;
    const c = this.cluster;
    if (!c || s.batchBytes === 0) return;
    const all = Buffer.concat(s.batch);
    s.batch = [];
    s.batchBytes = 0;
    if (!s.owned) return;
    const msgs: ClusterMessage[] = [];
    for (let i = 0; i < all.length; i += CHUNK_BYTES) msgs.push({ t: "d", m: s.machineId, o: c.owner, e: s.epoch, s: ++s.seq, b: all.subarray(i, i + CHUNK_BYTES).toString("base64") });
    c.send(...msgs);
  }

  /** Viewer process: ask the owner for its recent output; wait for it (at most snapshotTimeoutMs). */
  private async requestSnapshot(s: Session): Promise<void> {
    const c = this.cluster!;
    if (!s.snapshot) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      s.snapshot = { r: ++this.reqId, parts: [], held: [], done, resolve };
      c.send({ t: "q", m: s.machineId, o: c.owner, r: s.snapshot.r });
    }
    const snap = s.snapshot;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), c.snapshotTimeoutMs)));
    const late = await Promise.race([snap.done.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late && s.snapshot === snap) {
      // The owner does not answer (dead, or its lease about to lapse): show what arrived; a takeover follows.
      s.synced = true;
      this.finishSnapshot(s);
      if (!s.ownerStatus || s.ownerStatus.state !== "open")
        s.ownerStatus = { machineId: s.machineId, state: "opening", holder: s.holder?.name ?? null, viewers: s.viewers.size, error: this.unansweredMessage(s) };
    }
  }

  private unansweredMessage(s: Session): string {
    return `The process holding this console (${s.ownerName ?? "unknown"}) does not answer; another process takes it over when its lease lapses`;
  }

  /** End a pending snapshot: the output held back meanwhile joins the recent output (a joiner gets it in its answer). */
  private finishSnapshot(s: Session, upTo?: { e: number; s: number }) {
    const snap = s.snapshot;
    if (!snap) return;
    s.snapshot = undefined;
    for (const d of snap.held) {
      if (upTo && (d.e < upTo.e || (d.e === upTo.e && d.s <= upTo.s))) continue;
      this.takeOutput(s, d, false);
    }
    snap.resolve();
  }

  /** Viewer process: output of the owner; `show`: to this process's viewers too (not when it goes into a joiner's answer). */
  private takeOutput(s: Session, d: Extract<ClusterMessage, { t: "d" }>, show: boolean) {
    if (d.e < s.ownerEpoch) return; // a former owner's late output
    if (d.e > s.ownerEpoch) {
      s.ownerEpoch = d.e;
      s.lastSeq = 0;
    }
    if (d.s <= s.lastSeq) return;
    if (s.lastSeq > 0 && d.s > s.lastSeq + 1) this.cluster!.stats.gaps += d.s - s.lastSeq - 1;
    s.lastSeq = d.s;
    const data = Buffer.from(d.b, "base64");
    this.keepRecent(s, data);
    if (show) this.emit({ type: "data", machineId: s.machineId, data });
  }

  /** A message on the channel (another process's, or this one's own). */
  private receive(m: ClusterMessage): void {
    const c = this.cluster!;
    if (this.halted) return;
    const s = this.sessions.get(m.m);
    if (m.t === "i") {
      // Keys: sent only while their viewer held the keyboard; written by whoever holds the stream.
      if (s?.owned && s.stream) s.stream.write(Buffer.from(m.b, "base64"));
      return;
    }
    if (m.o === c.owner || !s) return;
    switch (m.t) {
      case "d":
        if (s.owned) return;
        s.heardAt = Date.now();
        if (s.snapshot) s.snapshot.held.push(m);
        else this.takeOutput(s, m, true);
        return;
      case "st":
        if (s.owned) {
          // Another process publishes a newer epoch of this console: it holds the lease now.
          if (m.e > s.epoch) void this.demote(s, `${m.o} took the console over`);
          return;
        }
        if (m.e < s.ownerEpoch) return;
        if (m.e > s.ownerEpoch) {
          // A new owner (a takeover): its output is numbered afresh; tell it about this process's viewers at once.
          s.ownerEpoch = m.e;
          s.lastSeq = 0;
          this.sendWatch(s);
        }
        s.ownerStatus = m.st;
        s.ownerName = m.o;
        s.heardAt = Date.now();
        this.emit({ type: "status", status: m.st });
        // The owner closed (it saw nobody) while someone here watches: open it again from here.
        if (m.st.state === "closed" && s.viewers.size > 0) void this.claim(s);
        return;
      case "w":
        if (!s.owned) return;
        if (m.n > 0) s.remote.set(m.o, { n: m.n, at: Date.now() });
        else s.remote.delete(m.o);
        this.graceIfUnwatched(s);
        this.publishStatus(s);
        return;
      case "k":
        if (s.owned || s.mine) void this.rereadKeyboard(s);
        return;
      case "q":
        if (s.owned) this.sendSnapshot(s, m.o, m.r);
        return;
      case "r":
        if (m.to !== c.owner || s.owned || s.snapshot?.r !== m.r) return;
        s.snapshot.parts[m.i] = m.b;
        if (s.snapshot.parts.filter((p) => p !== undefined).length < m.n) return;
        s.recent = [Buffer.concat(s.snapshot.parts.map((p) => Buffer.from(p, "base64")))];
        s.recentBytes = s.recent[0]!.length;
        s.ownerEpoch = m.e;
        s.lastSeq = m.s;
        s.synced = true;
        s.heardAt = Date.now();
        if (m.st) s.ownerStatus = m.st;
        s.ownerName = m.o;
        this.finishSnapshot(s, { e: m.e, s: m.s });
        return;
    }
  }

  /** Owner: the recent output for a late joiner on another process, placed in the output stream (everything sent so far is in it). */
  private sendSnapshot(s: Session, to: string, r: number) {
    const c = this.cluster!;
    this.flush(s);
    const all = Buffer.concat(s.recent);
    // The output in chunks, then the status alone (a chunk and a status together could pass the payload limit).
    const n = Math.ceil(all.length / CHUNK_BYTES) + 1;
    const msgs: ClusterMessage[] = [];
    for (let i = 0; i < n - 1; i++) msgs.push({ t: "r", m: s.machineId, o: c.owner, e: s.epoch, to, r, s: s.seq, i, n, b: all.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES).toString("base64") });
    msgs.push({ t: "r", m: s.machineId, o: c.owner, e: s.epoch, to, r, s: s.seq, i: n - 1, n, b: "", st: forMessage(this.status(s.machineId)) });
    c.send(...msgs);
  }

  private async rereadKeyboard(s: Session): Promise<void> {
    const c = this.cluster!;
    const holder = await c.readKeyboard(s.machineId).catch(() => undefined);
    if (holder === undefined || this.sessions.get(s.machineId) !== s) return;
    if (s.mine && !(holder && holder.process === c.owner && holder.viewerId === s.mine.viewerId)) s.mine = null;
    const changed = holder?.name !== s.holder?.name || holder?.viewerId !== s.holder?.viewerId || holder?.process !== s.holder?.process;
    s.holder = holder;
    if (changed && s.owned) this.publishStatus(s);
  }

  /**
   * One round of the cluster's upkeep (every renewMs; tests call it): the owner renews its lease, forgets viewers
   * not reported lately, re-reads the keyboard and publishes its status (the others' sign of life); a viewer process
   * reports its viewers, renews the keyboard lease of its viewer, notices a silent owner and tries to take over.
   */
  async tick(): Promise<void> {
    // A slow database must not pile renewals up: a tick still running makes the next one wait for it.
    if (this.ticking) return this.ticking;
    this.ticking = this.upkeep().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async upkeep(): Promise<void> {
    const c = this.cluster;
    if (!c || this.halted) return;
    const now = Date.now();
    const mine = [...this.sessions.values()].filter((s) => s.mine).map((s) => ({ machineId: s.machineId, holder: s.mine! }));
    if (mine.length) {
      const still = await c.renewKeyboards(mine).catch(() => undefined);
      if (still) for (const k of mine) if (!still.has(k.machineId)) this.sessions.get(k.machineId)!.mine = null;
    }
    await Promise.all(
      [...this.sessions.values()].map(async (s) => {
        if (s.owned) {
          const sentAt = Date.now();
          try {
            const lease = await c.claimConsole(s.machineId);
            if (!lease.held) return void (await this.demote(s, `${lease.holder ?? "another process"} holds its lease`));
            s.validUntil = sentAt + c.leaseMs;
          } catch (err) {
            this.d.log.warn("console: renewing the console lease failed", { machineId: s.machineId, error: String(err) });
            if (Date.now() >= s.validUntil) return void (await this.demote(s, "its lease could not be renewed"));
          }
          for (const [p, r] of s.remote) if (now - r.at > c.leaseMs) s.remote.delete(p);
          const holder = await c.readKeyboard(s.machineId).catch(() => undefined);
          if (holder !== undefined) s.holder = holder;
          this.graceIfUnwatched(s);
          this.publishStatus(s);
          return;
        }
        if (s.viewers.size === 0) return;
        this.sendWatch(s);
        if (s.ownerStatus && s.ownerStatus.state !== "closed" && now - s.heardAt > c.leaseMs && !s.ownerStatus.error) {
          s.ownerStatus = { ...s.ownerStatus, state: "opening", error: this.unansweredMessage(s) };
          this.emit({ type: "status", status: this.status(s.machineId) });
        }
        await this.claim(s);
      }),
    );
  }
}

/** A status as sent to the other processes: its error cut short (a message stays under NOTIFY's payload limit). */
function forMessage(st: ConsoleStatus): ConsoleStatus {
  return st.error && st.error.length > 500 ? { ...st, error: `${st.error.slice(0, 500)}…` } : st;
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
