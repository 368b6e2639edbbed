/**
 * Console transcripts: everything a machine's console printed, appended to <consoleDir>/<machineId>.log so the
 * history of an install survives the browser tab. Size-capped: at `maxBytes` the file rotates to .1, .2, …
 * keeping `keep` old files.
 *
 * Beside each file, <file>.idx records when its bytes arrived: one "<byte offset> <ms since epoch>" line per
 * received chunk, at most one per INDEX_STEP_MS (a line printed within that step of the last mark gets the mark's
 * time). The job timeline (server/orchestrator/job-record.ts) places console lines on its time axis with it.
 * Bytes written before the index existed (older transcripts) have no time and stay off the axis.
 */
import fs from "node:fs";
import path from "node:path";

/** Marks closer together than this are skipped: the index stays a few bytes per step, not per chunk. */
export const INDEX_STEP_MS = 50;

export class Transcript {
  private size: number;
  readonly file: string;
  /** When the last index mark was written (0: none yet for the current file). */
  private lastMark = 0;

  constructor(
    dir: string,
    machineId: number,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.file = transcriptFile(dir, machineId);
    this.size = fs.existsSync(this.file) ? fs.statSync(this.file).size : 0;
  }

  /** Append what the console printed, received at `now` (ms). */
  append(chunk: Buffer | string, now = Date.now()): void {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (this.size + b.length > this.maxBytes && this.size > 0) this.rotate();
    if (b.length > 0 && (this.lastMark === 0 || now - this.lastMark >= INDEX_STEP_MS || now < this.lastMark)) {
      fs.appendFileSync(indexFile(this.file), `${this.size} ${now}\n`, { mode: 0o640 });
      this.lastMark = now;
    }
    fs.appendFileSync(this.file, b, { mode: 0o640 });
    this.size += b.length;
  }

  private rotate(): void {
    const move = (from: string, to: string) => {
      if (fs.existsSync(from)) fs.renameSync(from, to);
      else fs.rmSync(to, { force: true }); // no index for this file: an older one must not describe it
    };
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.file}.${i}`;
      if (fs.existsSync(from)) {
        fs.renameSync(from, `${this.file}.${i + 1}`);
        move(indexFile(from), indexFile(`${this.file}.${i + 1}`));
      }
    }
    if (this.keep > 0) {
      fs.renameSync(this.file, `${this.file}.1`);
      move(indexFile(this.file), indexFile(`${this.file}.1`));
    } else fs.rmSync(this.file, { force: true });
    fs.rmSync(indexFile(this.file), { force: true });
    fs.rmSync(`${this.file}.${this.keep + 1}`, { force: true });
    fs.rmSync(indexFile(`${this.file}.${this.keep + 1}`), { force: true });
    this.size = 0;
    this.lastMark = 0;
  }
}

export function transcriptFile(dir: string, machineId: number): string {
  return path.join(dir, `${machineId}.log`);
}

/** The arrival-time index of a transcript file (see the header). */
export function indexFile(file: string): string {
  return `${file}.idx`;
}

/** The transcript files of a machine, oldest first (rotated ones, then the current one). */
export function transcriptFiles(dir: string, machineId: number): string[] {
  const base = transcriptFile(dir, machineId);
  const rotated: string[] = [];
  for (let i = 1; fs.existsSync(`${base}.${i}`); i++) rotated.unshift(`${base}.${i}`);
  return [...rotated, ...(fs.existsSync(base) ? [base] : [])];
}

/** A console line placed in time: when its first byte arrived (ms), and its text as a terminal would show it. */
export interface TimedConsoleLine {
  ts: number;
  text: string;
}

const LINE_MAX = 2000;
// CSI (colours, cursor), OSC (titles, ended by BEL or ST) and two-byte escapes: a terminal draws none of them.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]/g;

/** What a terminal shows of one raw line: no escapes, the last carriage-return overwrite, no other controls. */
export function consoleText(raw: string): string {
  const noEsc = raw.replace(ESCAPES, "");
  const parts = noEsc.split("\r").filter((p) => p.length > 0);
  const shown = parts.length ? parts[parts.length - 1]! : "";
  const clean = shown.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, "").trimEnd();
  return clean.length > LINE_MAX ? `${clean.slice(0, LINE_MAX)}…` : clean;
}

function readMarks(file: string): { offset: number; ts: number }[] {
  if (!fs.existsSync(file)) return [];
  const marks: { offset: number; ts: number }[] = [];
  for (const l of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(l);
    if (m) marks.push({ offset: Number(m[1]), ts: Number(m[2]) });
  }
  return marks;
}

/**
 * The console lines of a machine that began printing between `fromMs` and `toMs` (inclusive), oldest first, at
 * most `maxLines` (the latest kept). Reads only the byte range the arrival index points at, not whole files.
 * Lines without an index mark before them (written before the index existed) are left out.
 */
export function consoleLinesBetween(dir: string, machineId: number, fromMs: number, toMs: number, maxLines = 50_000): TimedConsoleLine[] {
  const out: TimedConsoleLine[] = [];
  for (const f of transcriptFiles(dir, machineId)) {
    const marks = readMarks(indexFile(f));
    const first = marks.findIndex((m) => m.ts >= fromMs);
    if (first < 0 || marks[first]!.ts > toMs) continue;
    const afterEnd = marks.findIndex((m) => m.ts > toMs);
    const size = fs.statSync(f).size;
    // One byte early: if that byte is not a newline, the mark falls inside a line begun earlier, which is skipped.
    const start = Math.max(0, marks[first]!.offset - 1);
    const endLimit = afterEnd < 0 ? size : marks[afterEnd]!.offset;
    const readEnd = Math.min(size, endLimit + LINE_MAX * 4);
    if (readEnd <= start) continue;
    const buf = Buffer.alloc(readEnd - start);
    const fd = fs.openSync(f, "r");
    try {
      fs.readSync(fd, buf, 0, buf.length, start);
    } finally {
      fs.closeSync(fd);
    }
    let pos = start === 0 && marks[first]!.offset === 0 ? 0 : buf.indexOf(0x0a) + 1;
    if (pos === 0 && !(start === 0 && marks[first]!.offset === 0)) continue; // no line starts in range
    let m = first;
    while (pos < buf.length && start + pos < endLimit) {
      const nl = buf.indexOf(0x0a, pos);
      const lineEnd = nl < 0 ? buf.length : nl;
      const at = start + pos;
      while (m + 1 < marks.length && marks[m + 1]!.offset <= at) m++;
      const text = consoleText(buf.subarray(pos, lineEnd).toString("utf8"));
      const ts = marks[m]!.ts;
      if (text && ts >= fromMs && ts <= toMs) out.push({ ts, text });
      if (nl < 0) break;
      pos = nl + 1;
    }
  }
  return out.length > maxLines ? out.slice(out.length - maxLines) : out;
}
