/**
 * Serial consoles shared by every viewer: one driver console stream (e.g. one `ipmitool sol activate`) per
 * machine while anyone watches, plus a grace period after the last viewer leaves. Output goes to every viewer
 * (through listeners: the socket gateway) and to the transcript. One viewer holds the keyboard at a time.
 * While anyone watches, a console that fails to open or drops (the BMC busy with a power cycle, a BMC reset, the
 * network) is reopened with backoff (1 s doubling to 15 s); wrong credentials are not retried.
 */
import { AppError } from "../../../lib/errors";
import { backoffDelay } from "../../../lib/retry";
import type { Domain } from "../../context";
import { storeOf } from "../../db/store";
import { recordStoreEvent } from "../../events/audit";
import { loadBmc } from "../bmc-state";
import { BmcError } from "../errors";
import type { ConsoleStream } from "../types";
import { Transcript } from "./transcript";

export interface ConsoleStatus {
  machineId: number;
  state: "opening" | "open" | "closed" | "error";
  /** Seconds until the next attempt to reopen a failed or dropped console (while anyone watches). */
  retryInS?: number;
  /** User name of the viewer holding the keyboard. */
  holder: string | null;
  viewers: number;
  error?: string;
}

export type ConsoleMessage = { type: "data"; machineId: number; data: Buffer } | { type: "status"; status: ConsoleStatus };

interface Session {
  machineId: number;
  stream?: ConsoleStream;
  opening?: Promise<void>;
  viewers: Map<string, string>;
  holder: { viewerId: string; name: string } | null;
  state: ConsoleStatus["state"];
  error?: string;
  grace?: NodeJS.Timeout;
  retry?: NodeJS.Timeout;
  retryInS?: number;
  /** Failed opens in a row (the backoff exponent). */
  failures: number;
  /** Recent output, so a viewer who joins late sees the screen so far. */
  recent: Buffer[];
  recentBytes: number;
  transcript: Transcript;
}

const RECENT_MAX = 64 * 1024;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 15_000;

export class ConsoleManager {
  private readonly sessions = new Map<number, Session>();
  private readonly listeners = new Set<(m: ConsoleMessage) => void>();

  constructor(private readonly d: Domain) {}

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
    return {
      machineId,
      state: s.state,
      holder: s.holder?.name ?? null,
      viewers: s.viewers.size,
      ...(s.error ? { error: s.error } : {}),
      ...(s.retry && s.retryInS !== undefined ? { retryInS: s.retryInS } : {}),
    };
  }

  private publishStatus(machineId: number) {
    this.emit({ type: "status", status: this.status(machineId) });
  }

  /**
   * Add a viewer; opens the console if it is not open. Resolves with the status and recent output.
   * @throws AppError MACHINE_NOT_FOUND, BMC_NOT_CONFIGURED
   */
  async join(machineId: number, viewerId: string, name: string): Promise<{ status: ConsoleStatus; recent: Buffer }> {
    await loadBmc(this.d, machineId); // fail fast for unknown machines / no BMC
    let s = this.sessions.get(machineId);
    if (!s) {
      const cfg = this.d.oob.config;
      s = { machineId, viewers: new Map(), holder: null, state: "closed", failures: 0, recent: [], recentBytes: 0, transcript: new Transcript(cfg.consoleDir, machineId, cfg.transcriptMaxBytes, cfg.transcriptKeep) };
      this.sessions.set(machineId, s);
    }
    clearTimeout(s.grace);
    s.viewers.set(viewerId, name);
    if (!s.stream && !s.opening) s.opening = this.open(s);
    this.publishStatus(machineId);
    await s.opening;
    return { status: this.status(machineId), recent: Buffer.concat(s.recent) };
  }

  private async open(s: Session): Promise<void> {
    s.state = "opening";
    s.error = undefined;
    try {
      const { driver, target } = await loadBmc(this.d, s.machineId);
      driver.console.validate(target);
      const stream = await driver.console.open(target);
      s.stream = stream;
      s.state = "open";
      s.failures = 0;
      s.transcript.append(`\r\n--- console opened ${new Date().toISOString()} ---\r\n`);
      stream.onData((chunk) => {
        s.transcript.append(chunk);
        s.recent.push(chunk);
        s.recentBytes += chunk.length;
        while (s.recentBytes > RECENT_MAX && s.recent.length > 1) s.recentBytes -= s.recent.shift()!.length;
        this.emit({ type: "data", machineId: s.machineId, data: chunk });
      });
      stream.onClose((reason) => {
        if (s.stream !== stream) return;
        s.stream = undefined;
        s.state = "closed";
        s.transcript.append(`\r\n--- console closed ${new Date().toISOString()}: ${reason} ---\r\n`);
        this.scheduleReopen(s);
        this.publishStatus(s.machineId);
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
      this.publishStatus(s.machineId);
    }
  }

  /** Reopen later while anyone still watches this session (backoff doubles per failure, capped). */
  private scheduleReopen(s: Session): void {
    if (s.viewers.size === 0 || s.retry || this.sessions.get(s.machineId) !== s) return;
    const delay = backoffDelay(s.failures, { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS });
    s.failures++;
    s.retryInS = Math.round(delay / 1000);
    s.retry = setTimeout(() => {
      s.retry = undefined;
      s.retryInS = undefined;
      if (s.viewers.size > 0 && !s.stream && !s.opening && this.sessions.get(s.machineId) === s) s.opening = this.open(s);
    }, delay);
    s.retry.unref();
  }

  /** Remove a viewer; the last one out starts the grace period, after which the console closes. */
  leave(machineId: number, viewerId: string): void {
    const s = this.sessions.get(machineId);
    if (!s || !s.viewers.delete(viewerId)) return;
    if (s.holder?.viewerId === viewerId) s.holder = null;
    if (s.viewers.size === 0) {
      s.grace = setTimeout(() => void this.close(machineId), this.d.oob.config.consoleGraceMs);
      s.grace.unref();
    }
    this.publishStatus(machineId);
  }

  /** Take the keyboard (from whoever held it). */
  take(machineId: number, viewerId: string, name: string): void {
    const s = this.sessions.get(machineId);
    if (!s || !s.viewers.has(viewerId)) throw new AppError("CONSOLE_NOT_HELD", "Open the console before taking the keyboard");
    s.holder = { viewerId, name };
    this.publishStatus(machineId);
    // The audit row is written after the keyboard changed hands; a database error is logged, the keyboard stays taken.
    const store = storeOf(this.d);
    void recordStoreEvent(store, store.db, { actor: `user:${name}`, machineId, kind: "console.keyboard", message: `${name} took the console keyboard` }).then(
      (ev) => this.d.bus.publish({ type: "event.created", event: ev }),
      (err) => this.d.log.error("console: keyboard event not recorded", { machineId, error: String(err) }),
    );
  }

  release(machineId: number, viewerId: string): void {
    const s = this.sessions.get(machineId);
    if (s?.holder?.viewerId !== viewerId) return;
    s.holder = null;
    this.publishStatus(machineId);
  }

  /** Keystrokes from the viewer holding the keyboard. @throws AppError CONSOLE_NOT_HELD */
  input(machineId: number, viewerId: string, data: string): void {
    const s = this.sessions.get(machineId);
    if (!s?.stream || s.holder?.viewerId !== viewerId) throw new AppError("CONSOLE_NOT_HELD", "Take the keyboard first");
    s.stream.write(data);
  }

  async close(machineId: number): Promise<void> {
    const s = this.sessions.get(machineId);
    if (!s || s.viewers.size > 0) return;
    this.sessions.delete(machineId);
    clearTimeout(s.grace);
    clearTimeout(s.retry);
    s.retry = undefined;
    await s.opening;
    const stream = s.stream;
    s.stream = undefined;
    if (stream) {
      s.transcript.append(`\r\n--- console closed ${new Date().toISOString()}: no viewers ---\r\n`);
      await stream.close();
    }
  }

  async closeAll(): Promise<void> {
    for (const s of this.sessions.values()) s.viewers.clear();
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id)));
  }

  /** Is a console child running for this machine? (tests, metrics) */
  isOpen(machineId: number): boolean {
    return !!this.sessions.get(machineId)?.stream;
  }
}
