/**
 * Console transcripts: everything a machine's console printed, appended to <consoleDir>/<machineId>.log so the
 * history of an install survives the browser tab. Size-capped: at `maxBytes` the file rotates to .1, .2, …
 * keeping `keep` old files.
 */
import fs from "node:fs";
import path from "node:path";

export class Transcript {
  private size: number;
  readonly file: string;

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

  append(chunk: Buffer | string): void {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (this.size + b.length > this.maxBytes && this.size > 0) this.rotate();
    fs.appendFileSync(this.file, b, { mode: 0o640 });
    this.size += b.length;
  }

  private rotate(): void {
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.file}.${i}`;
      if (fs.existsSync(from)) fs.renameSync(from, `${this.file}.${i + 1}`);
    }
    if (this.keep > 0) fs.renameSync(this.file, `${this.file}.1`);
    else fs.rmSync(this.file, { force: true });
    fs.rmSync(`${this.file}.${this.keep + 1}`, { force: true });
    this.size = 0;
  }
}

export function transcriptFile(dir: string, machineId: number): string {
  return path.join(dir, `${machineId}.log`);
}

/** The transcript files of a machine, oldest first (rotated ones, then the current one). */
export function transcriptFiles(dir: string, machineId: number): string[] {
  const base = transcriptFile(dir, machineId);
  const rotated: string[] = [];
  for (let i = 1; fs.existsSync(`${base}.${i}`); i++) rotated.unshift(`${base}.${i}`);
  return [...rotated, ...(fs.existsSync(base) ? [base] : [])];
}
