import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { consoleLinesBetween, consoleText, indexFile, Transcript, transcriptFile, transcriptFiles } from "./transcript";

describe("console transcript arrival index", () => {
  let dir = "";
  beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-transcript-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("places each line at the arrival of its first byte, one mark per 50 ms at most", () => {
    const t = new Transcript(dir, 7, 1 << 20, 2);
    t.append("boot: one\r\nboot: t", 1000);
    t.append("wo\r\n", 1020); // within 50 ms: no new mark, the line keeps 1000
    t.append("kernel\r\n", 2000);
    t.append("\x1b[1;32mready\x1b[0m\r\nprogress 10%\rprogress 90%\r\n", 3000);
    t.append("half a li", 4000);
    t.append("ne\r\n", 5000);
    expect(fs.readFileSync(indexFile(transcriptFile(dir, 7)), "utf8").trim().split("\n")).toHaveLength(5);
    expect(consoleLinesBetween(dir, 7, 0, 10_000)).toEqual([
      { ts: 1000, text: "boot: one" },
      { ts: 1000, text: "boot: two" },
      { ts: 2000, text: "kernel" },
      { ts: 3000, text: "ready" },
      { ts: 3000, text: "progress 90%" },
      { ts: 4000, text: "half a line" },
    ]);
    // A window: lines that began in it, never the tail of a line begun before it.
    expect(consoleLinesBetween(dir, 7, 1500, 3500).map((l) => l.text)).toEqual(["kernel", "ready", "progress 90%"]);
    expect(consoleLinesBetween(dir, 7, 4500, 9000)).toEqual([]);
    expect(consoleLinesBetween(dir, 7, 0, 500)).toEqual([]);
    expect(consoleLinesBetween(dir, 7, 0, 10_000, 2).map((l) => l.text)).toEqual(["progress 90%", "half a line"]);
  });

  it("rotates the index with its file; bytes from before the index existed stay off the axis", () => {
    fs.writeFileSync(transcriptFile(dir, 3), "old line without time\r\n");
    const t = new Transcript(dir, 3, 40, 1);
    t.append("new line A\r\n", 1000);
    t.append("new line B that rotates\r\n", 2000); // 23 + 12 + 25 > 40: rotates first
    expect(transcriptFiles(dir, 3)).toHaveLength(2);
    expect(fs.existsSync(indexFile(`${transcriptFile(dir, 3)}.1`))).toBe(true);
    expect(consoleLinesBetween(dir, 3, 0, 10_000)).toEqual([
      { ts: 1000, text: "new line A" },
      { ts: 2000, text: "new line B that rotates" },
    ]);
    t.append("x".repeat(50) + "\n", 3000); // rotates again: the oldest file and its index go
    expect(consoleLinesBetween(dir, 3, 0, 10_000).map((l) => l.ts)).toEqual([2000, 3000]);
  });

  it("shows what a terminal would: no escapes or controls, the last overwrite, capped length", () => {
    expect(consoleText("\x1b]0;title\x07\x1b[2J\x1b[Hlogin: \x00\x07")).toBe("login:");
    expect(consoleText("a\rb\r")).toBe("b");
    expect(consoleText("ünïcode ✓ \t tab")).toBe("ünïcode ✓ \t tab");
    expect(consoleText("y".repeat(3000))).toHaveLength(2001);
  });
});
