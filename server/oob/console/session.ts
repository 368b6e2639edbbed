/**
 * A console session of a ConsoleManager (manager.ts): one machine's stream, viewers and keyboard holder on this
 * process, and, on a cluster, what this process knows of the owner (relay.ts).
 */
import type { ConsoleStream } from "../types";
import type { ClusterMessage, ConsoleStatus, KeyboardHolder } from "./messages";
import type { Transcript } from "./transcript";

/** What a manager tells its listeners (the socket gateway). */
export type ConsoleMessage = { type: "data"; machineId: number; data: Buffer } | { type: "status"; status: ConsoleStatus };

/** Recent output kept for late joiners. */
const RECENT_MAX = 64 * 1024;

export interface Session {
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
export interface Snapshot {
  r: number;
  parts: string[];
  held: Extract<ClusterMessage, { t: "d" }>[];
  done: Promise<void>;
  resolve: () => void;
}

export function newSession(machineId: number, owned: boolean): Session {
  return {
    machineId,
    viewers: new Map(),
    holder: null,
    state: "closed",
    failures: 0,
    recent: [],
    recentBytes: 0,
    owned,
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

/** Keep a chunk in the recent output (the oldest chunks go beyond RECENT_MAX). */
export function keepRecent(s: Session, chunk: Buffer): void {
  s.recent.push(chunk);
  s.recentBytes += chunk.length;
  while (s.recentBytes > RECENT_MAX && s.recent.length > 1) s.recentBytes -= s.recent.shift()!.length;
}

/** Viewers of a session on every process (owner: its own and those other processes reported lately). */
export function viewersOf(s: Session): number {
  let n = s.viewers.size;
  for (const r of s.remote.values()) n += r.n;
  return n;
}

/** A status as sent to the other processes: its error cut short (a message stays under NOTIFY's payload limit). */
export function forMessage(st: ConsoleStatus): ConsoleStatus {
  return st.error && st.error.length > 500 ? { ...st, error: `${st.error.slice(0, 500)}…` } : st;
}
