/**
 * What the console link (cluster.ts) carries between processes, and the names it keeps in leases: the message
 * union, the checks a message from the channel passes field by field, and the viewer/holder names
 * (docs/ARCHITECTURE.md "Console sessions across processes").
 */
import { AppError } from "../../../lib/errors";
import { checkOwner } from "../../db/pg/leases";

/** Raw console bytes per message: base64 makes 6,668 characters of them, leaving room for the envelope. */
export const CHUNK_BYTES = 5000;

export interface ConsoleStatus {
  machineId: number;
  state: "opening" | "open" | "closed" | "error";
  /** Seconds until the next attempt to reopen a failed or dropped console (while anyone watches). */
  retryInS?: number;
  /** User name of the viewer holding the keyboard. */
  holder: string | null;
  /** Viewers on every process. */
  viewers: number;
  error?: string;
}

/** A viewer on some process: its id there (a socket id) and its user name. */
export interface KeyboardHolder {
  process: string;
  viewerId: string;
  name: string;
}

export type ClusterMessage =
  /** Console output of the owner: `s` numbers the messages of this owner epoch `e` from 1. */
  | { t: "d"; m: number; o: string; e: number; s: number; b: string }
  /** The owner's status (viewers counted on every process). */
  | { t: "st"; m: number; o: string; e: number; st: ConsoleStatus }
  /** Process `o` has `n` viewers of machine `m` (sent on change and every renewal). */
  | { t: "w"; m: number; o: string; n: number }
  /** The keyboard of `m` changed hands: the owner re-reads the lease. */
  | { t: "k"; m: number; o: string }
  /** Process `o` asks the owner for the recent output (request `r`). */
  | { t: "q"; m: number; o: string; r: number }
  /** Reply to request `r` of process `to`: chunk `i` of `n` of the recent output, up to message `s` of epoch `e`. */
  | { t: "r"; m: number; o: string; e: number; to: string; r: number; s: number; i: number; n: number; b: string; st?: ConsoleStatus }
  /** Keystrokes for the owner's stream (sent only while the sender's viewer held the keyboard). */
  | { t: "i"; m: number; o: string; b: string };

const MACHINE_MAX = 2 ** 31 - 1;
/** A snapshot (64 KiB of recent output at most, in CHUNK_BYTES pieces, and its status) never needs more messages. */
const SNAPSHOT_MAX_PARTS = 32;
const VIEWER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** @throws AppError VALIDATION unless a positive 32-bit machine id. */
export function checkMachineId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > MACHINE_MAX) throw new AppError("VALIDATION", `console: machine id must be an integer from 1 to ${MACHINE_MAX}`);
  return id;
}

/** A viewer id (a socket id): 1-64 of A-Z a-z 0-9 _ -. @throws AppError VALIDATION */
export function checkViewerId(id: unknown): string {
  if (typeof id !== "string" || !VIEWER_ID.test(id)) throw new AppError("VALIDATION", "console: a viewer id is 1-64 of A-Z a-z 0-9 _ -");
  return id;
}

/** A viewer's user name as shown to the others: 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit. @throws AppError VALIDATION */
export function checkViewerName(name: unknown): string {
  if (typeof name !== "string" || !USER_NAME.test(name)) throw new AppError("VALIDATION", "console: a viewer name is 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit");
  return name;
}

export const consoleLeaseName = (machineId: number) => `console:${machineId}`;
export const keyboardLeaseName = (machineId: number) => `keyboard:${machineId}`;

export function keyboardHolder(h: KeyboardHolder): string {
  return `${checkOwner(h.process)}|${checkViewerId(h.viewerId)}|${checkViewerName(h.name)}`;
}

export function parseKeyboardHolder(s: string): KeyboardHolder | null {
  const [process, viewerId, name, ...rest] = s.split("|");
  if (rest.length || !process || !viewerId || !name) return null;
  try {
    return { process: checkOwner(process), viewerId: checkViewerId(viewerId), name: checkViewerName(name) };
  } catch {
    return null;
  }
}

const isInt = (v: unknown, min = 0): v is number => typeof v === "number" && Number.isInteger(v) && v >= min && v <= MACHINE_MAX * 2 ** 20;
const isStr = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;
const isB64 = (v: unknown): v is string => isStr(v, 8000) && /^[A-Za-z0-9+/]*={0,2}$/.test(v);
const isProc = (v: unknown): v is string => isStr(v, 128) && /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(v);

function validStatus(v: unknown): ConsoleStatus | null {
  if (!v || typeof v !== "object") return null;
  const s = v as Record<string, unknown>;
  if (!isInt(s.machineId, 1) || !["opening", "open", "closed", "error"].includes(s.state as string) || !isInt(s.viewers)) return null;
  if (s.holder !== null && !(isStr(s.holder, 64) && USER_NAME.test(s.holder))) return null;
  if (s.error !== undefined && !isStr(s.error, 2000)) return null;
  if (s.retryInS !== undefined && !isInt(s.retryInS)) return null;
  return {
    machineId: s.machineId,
    state: s.state as ConsoleStatus["state"],
    holder: s.holder,
    viewers: s.viewers,
    ...(s.error !== undefined ? { error: s.error } : {}),
    ...(s.retryInS !== undefined ? { retryInS: s.retryInS } : {}),
  };
}

/** A message from the channel, checked field by field (another process, another version, or anyone with NOTIFY rights). */
export function validMessage(v: unknown): ClusterMessage | null {
  if (!v || typeof v !== "object") return null;
  const m = v as Record<string, unknown>;
  if (!isInt(m.m, 1) || m.m > MACHINE_MAX || !isProc(m.o)) return null;
  switch (m.t) {
    case "d":
      return isInt(m.e, 1) && isInt(m.s, 1) && isB64(m.b) ? (m as ClusterMessage) : null;
    case "st": {
      const st = validStatus(m.st);
      return isInt(m.e, 1) && st && st.machineId === m.m ? { t: "st", m: m.m, o: m.o, e: m.e, st } : null;
    }
    case "w":
      return isInt(m.n) ? (m as ClusterMessage) : null;
    case "k":
      return m as ClusterMessage;
    case "q":
      return isInt(m.r, 1) ? (m as ClusterMessage) : null;
    case "r": {
      if (!(isInt(m.e, 1) && isProc(m.to) && isInt(m.r, 1) && isInt(m.s) && isInt(m.i) && isInt(m.n, 1) && m.n <= SNAPSHOT_MAX_PARTS && m.i < m.n && isB64(m.b))) return null;
      if (m.st === undefined) return m as ClusterMessage;
      const st = validStatus(m.st);
      return st && st.machineId === m.m ? ({ ...m, st } as ClusterMessage) : null;
    }
    case "i":
      return isB64(m.b) ? (m as ClusterMessage) : null;
    default:
      return null;
  }
}
