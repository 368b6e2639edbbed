import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..");
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");
/** The node flags before dist/server.mjs on a command line. */
const flagsOf = (line: string | undefined) => /\bnode ((?:--[\w-]+(?:=\S+)? )*)dist\/server\.mjs/.exec(line ?? "")?.[1]?.trim().split(" ") ?? null;

describe("the production server's node flags", () => {
  it("are the same in npm run serve, scripts/start.sh and the benches' default", () => {
    const serve = flagsOf((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.serve);
    const start = flagsOf(read("scripts/start.sh").split("\n").find((l) => l.startsWith("exec node")));
    const bench = /: \[("--[^\]]*")\];/.exec(read("bench/lib/server.ts"))?.[1]?.split(", ").map((f) => JSON.parse(f) as string) ?? null;
    // The memory settings of docs/BENCHMARKS.md: a 1 MiB young generation, one V8 worker thread.
    expect(serve).toEqual(["--max-semi-space-size=1", "--v8-pool-size=1"]);
    expect(start).toEqual(serve);
    expect(bench).toEqual(serve);
  });

  it("set the same glibc malloc environment in npm run serve, scripts/start.sh and the benches' default", async () => {
    const serve = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.serve ?? "";
    const fromServe = Object.fromEntries([...serve.matchAll(/\b(MALLOC_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
    const exportLine = read("scripts/start.sh").split("\n").find((l) => l.startsWith("export MALLOC_")) ?? "";
    const fromStart = Object.fromEntries([...exportLine.matchAll(/\b(MALLOC_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
    const { SERVER_MALLOC_ENV } = await import("../bench/lib/server");
    // Two arenas, and trimming and mmap at 128 KiB (fixed, so glibc does not raise them after a large burst).
    expect(fromServe).toEqual({ MALLOC_ARENA_MAX: "2", MALLOC_TRIM_THRESHOLD_: "131072", MALLOC_MMAP_THRESHOLD_: "131072" });
    expect(fromStart).toEqual(fromServe);
    expect(SERVER_MALLOC_ENV).toEqual(fromServe);
  });
});
