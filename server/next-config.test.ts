import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("Next's configuration at server start", () => {
  // A next.config.ts makes Next load its native SWC binding (a 100 MB file) to transpile the config on every start,
  // production included; ~27 MiB of it stayed resident in the server (docs/BENCHMARKS.md, Fleet cost).
  it("loads without Next's SWC binding, as the production server loads it", () => {
    const script = `
      const loadConfig = require("next/dist/server/config").default;
      const { PHASE_PRODUCTION_SERVER } = require("next/constants");
      loadConfig(PHASE_PRODUCTION_SERVER, process.cwd()).then((c) => {
        const maps = require("node:fs").readFileSync("/proc/self/maps", "utf8");
        console.log(JSON.stringify({ external: c.serverExternalPackages, swc: maps.includes("next-swc") }));
      });`;
    const out = execFileSync(process.execPath, ["-e", script], { cwd: ROOT, env: { ...process.env, NODE_ENV: "production" }, encoding: "utf8" });
    const last = JSON.parse(out.trim().split("\n").at(-1)!) as { external: string[]; swc: boolean };
    expect(last.external).toContain("better-sqlite3");
    expect(last.swc).toBe(false);
  });
});
