/** Watch a VM's serial console log (a file QEMU appends to) and note when each pattern first appears. */
import fs from "node:fs";

export class ConsoleWatch {
  /** Pattern name → epoch ms when it was first seen (to the poll interval). */
  readonly seen: Record<string, number> = {};
  private offset = 0;
  private buf = "";
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    private readonly patterns: Record<string, RegExp>,
    pollMs = 100,
  ) {
    this.offset = fs.existsSync(file) ? fs.statSync(file).size : 0; // only what is printed from now on
    this.timer = setInterval(() => this.poll(), pollMs);
    this.timer.unref();
  }

  private poll(): void {
    let size: number;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      return;
    }
    if (size <= this.offset) return;
    const fd = fs.openSync(this.file, "r");
    try {
      const chunk = Buffer.alloc(size - this.offset);
      fs.readSync(fd, chunk, 0, chunk.length, this.offset);
      this.offset = size;
      this.buf += chunk.toString("latin1").replaceAll("\r", "");
    } finally {
      fs.closeSync(fd);
    }
    const now = Date.now();
    for (const [name, re] of Object.entries(this.patterns)) if (!(name in this.seen) && re.test(this.buf)) this.seen[name] = now;
  }

  /** Everything printed since the watch started. */
  text(): string {
    this.poll();
    return this.buf;
  }

  async waitFor(name: string, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.poll();
      if (name in this.seen) return this.seen[name]!;
      if (Date.now() > deadline) throw new Error(`${name} (${this.patterns[name]}) did not appear on the console within ${timeoutMs} ms; last lines:\n${this.buf.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
