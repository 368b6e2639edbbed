/**
 * The cross-process half of a ConsoleManager on a ConsoleCluster (docs/ARCHITECTURE.md "Console sessions across
 * processes"): claiming and losing the ownership of a stream, the owner's output sent in numbered messages, a viewer
 * process mirroring it (and a late joiner's snapshot of the recent output), the messages of the channel, and the
 * upkeep round (renewals, viewer counts, takeovers). The sessions and the stream itself stay the manager's.
 */
import type { Logger } from "../../log";
import type { ConsoleCluster } from "./cluster";
import { CHUNK_BYTES, type ClusterMessage, type ConsoleStatus } from "./messages";
import { forMessage, keepRecent, type ConsoleMessage, type Session } from "./session";

/** What the relay needs of its manager. */
export interface RelayHost {
  readonly sessions: Map<number, Session>;
  readonly log: Logger;
  halted(): boolean;
  emit(m: ConsoleMessage): void;
  status(machineId: number): ConsoleStatus;
  /** Open the stream of a session this process owns. */
  open(s: Session): Promise<void>;
  publishStatus(s: Session): void;
  stopStream(s: Session, why: string): Promise<void>;
  graceIfUnwatched(s: Session): void;
}

export class ConsoleRelay {
  private reqId = 0;

  constructor(
    private readonly c: ConsoleCluster,
    private readonly host: RelayHost,
  ) {}

  /** Try to become the owner of a session's stream (one attempt at a time per session). */
  claim(s: Session): Promise<void> {
    const c = this.c;
    if (s.owned) return Promise.resolve();
    s.claiming ??= (async () => {
      const sentAt = Date.now();
      try {
        const lease = await c.claimConsole(s.machineId);
        if (!lease.held) {
          s.ownerName = lease.holder ?? undefined;
          return;
        }
        if (this.host.sessions.get(s.machineId) !== s || s.viewers.size === 0 || this.host.halted()) {
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
        if (!s.stream && !s.opening) s.opening = this.host.open(s);
        this.host.publishStatus(s);
        await s.opening;
      } catch (err) {
        this.host.log.warn("console: claiming the console lease failed", { machineId: s.machineId, error: String(err) });
      }
    })().finally(() => (s.claiming = undefined));
    return s.claiming;
  }

  /** The owner lost its lease (another process has it, or the database did not confirm it in time): stop the stream. */
  private async demote(s: Session, why: string): Promise<void> {
    if (!s.owned) return;
    this.host.log.warn("console: no longer the owner of this console", { machineId: s.machineId, why });
    s.owned = false;
    clearTimeout(s.retry);
    s.retry = undefined;
    s.remote.clear();
    s.ownerEpoch = s.epoch;
    s.lastSeq = s.seq;
    s.synced = true;
    s.heardAt = Date.now();
    s.ownerStatus = { machineId: s.machineId, state: "opening", holder: s.holder?.name ?? null, viewers: s.viewers.size, error: `This process lost the console (${why}); it is reopened elsewhere` };
    this.host.emit({ type: "status", status: this.host.status(s.machineId) });
    await this.host.stopStream(s, why);
  }

  sendWatch(s: Session) {
    const c = this.c;
    if (c && !s.owned) c.send({ t: "w", m: s.machineId, o: c.owner, n: s.viewers.size });
  }

  /** Owner: output waits up to batchMs (and at most CHUNK_BYTES) before it is sent to the other processes. */
  queueOutput(s: Session, chunk: Buffer) {
    const c = this.c;
    s.batch.push(chunk);
    s.batchBytes += chunk.length;
    if (c.batchMs === 0 || s.batchBytes >= CHUNK_BYTES) return this.flush(s);
    if (!s.batchTimer) {
      s.batchTimer = setTimeout(() => this.flush(s), c.batchMs);
      s.batchTimer.unref();
    }
  }

  flush(s: Session) {
    clearTimeout(s.batchTimer);
    s.batchTimer = undefined;
    const c = this.c;
    if (s.batchBytes === 0) return;
    const all = Buffer.concat(s.batch);
    s.batch = [];
    s.batchBytes = 0;
    if (!s.owned) return;
    const msgs: ClusterMessage[] = [];
    for (let i = 0; i < all.length; i += CHUNK_BYTES) msgs.push({ t: "d", m: s.machineId, o: c.owner, e: s.epoch, s: ++s.seq, b: all.subarray(i, i + CHUNK_BYTES).toString("base64") });
    c.send(...msgs);
  }

  /** Viewer process: ask the owner for its recent output; wait for it (at most snapshotTimeoutMs). */
  async requestSnapshot(s: Session): Promise<void> {
    const c = this.c;
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
    if (s.lastSeq > 0 && d.s > s.lastSeq + 1) this.c.stats.gaps += d.s - s.lastSeq - 1;
    s.lastSeq = d.s;
    const data = Buffer.from(d.b, "base64");
    keepRecent(s, data);
    if (show) this.host.emit({ type: "data", machineId: s.machineId, data });
  }

  /** A message on the channel (another process's, or this one's own). */
  receive(m: ClusterMessage): void {
    const c = this.c;
    if (this.host.halted()) return;
    const s = this.host.sessions.get(m.m);
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
        this.host.emit({ type: "status", status: m.st });
        // The owner closed (it saw nobody) while someone here watches: open it again from here.
        if (m.st.state === "closed" && s.viewers.size > 0) void this.claim(s);
        return;
      case "w":
        if (!s.owned) return;
        if (m.n > 0) s.remote.set(m.o, { n: m.n, at: Date.now() });
        else s.remote.delete(m.o);
        this.host.graceIfUnwatched(s);
        this.host.publishStatus(s);
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
    const c = this.c;
    this.flush(s);
    const all = Buffer.concat(s.recent);
    // The output in chunks, then the status alone (a chunk and a status together could pass the payload limit).
    const n = Math.ceil(all.length / CHUNK_BYTES) + 1;
    const msgs: ClusterMessage[] = [];
    for (let i = 0; i < n - 1; i++) msgs.push({ t: "r", m: s.machineId, o: c.owner, e: s.epoch, to, r, s: s.seq, i, n, b: all.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES).toString("base64") });
    msgs.push({ t: "r", m: s.machineId, o: c.owner, e: s.epoch, to, r, s: s.seq, i: n - 1, n, b: "", st: forMessage(this.host.status(s.machineId)) });
    c.send(...msgs);
  }

  private async rereadKeyboard(s: Session): Promise<void> {
    const c = this.c;
    const holder = await c.readKeyboard(s.machineId).catch(() => undefined);
    if (holder === undefined || this.host.sessions.get(s.machineId) !== s) return;
    if (s.mine && !(holder && holder.process === c.owner && holder.viewerId === s.mine.viewerId)) s.mine = null;
    const changed = holder?.name !== s.holder?.name || holder?.viewerId !== s.holder?.viewerId || holder?.process !== s.holder?.process;
    s.holder = holder;
    if (changed && s.owned) this.host.publishStatus(s);
  }

  /**
   * One round of the cluster's upkeep (ConsoleManager.tick): the owner renews its lease, forgets viewers not
   * reported lately, re-reads the keyboard and publishes its status (the others' sign of life); a viewer process
   * reports its viewers, renews the keyboard lease of its viewer, notices a silent owner and tries to take over.
   */
  async upkeep(): Promise<void> {
    const c = this.c;
    if (this.host.halted()) return;
    const now = Date.now();
    const mine = [...this.host.sessions.values()].filter((s) => s.mine).map((s) => ({ machineId: s.machineId, holder: s.mine! }));
    if (mine.length) {
      const still = await c.renewKeyboards(mine).catch(() => undefined);
      if (still) for (const k of mine) if (!still.has(k.machineId)) this.host.sessions.get(k.machineId)!.mine = null;
    }
    await Promise.all(
      [...this.host.sessions.values()].map(async (s) => {
        if (s.owned) {
          const sentAt = Date.now();
          try {
            const lease = await c.claimConsole(s.machineId);
            if (!lease.held) return void (await this.demote(s, `${lease.holder ?? "another process"} holds its lease`));
            s.validUntil = sentAt + c.leaseMs;
          } catch (err) {
            this.host.log.warn("console: renewing the console lease failed", { machineId: s.machineId, error: String(err) });
            if (Date.now() >= s.validUntil) return void (await this.demote(s, "its lease could not be renewed"));
          }
          for (const [p, r] of s.remote) if (now - r.at > c.leaseMs) s.remote.delete(p);
          const holder = await c.readKeyboard(s.machineId).catch(() => undefined);
          if (holder !== undefined) s.holder = holder;
          this.host.graceIfUnwatched(s);
          this.host.publishStatus(s);
          return;
        }
        if (s.viewers.size === 0) return;
        this.sendWatch(s);
        if (s.ownerStatus && s.ownerStatus.state !== "closed" && now - s.heardAt > c.leaseMs && !s.ownerStatus.error) {
          s.ownerStatus = { ...s.ownerStatus, state: "opening", error: this.unansweredMessage(s) };
          this.host.emit({ type: "status", status: this.host.status(s.machineId) });
        }
        await this.claim(s);
      }),
    );
  }
}
