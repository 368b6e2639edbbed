import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { permanent } from "../errors";
import { run } from "../exec";
import type { StepHandler } from "./context";
import { parseParams } from "./params";

export const runScriptParams = z.object({
  script: z.string().min(1).max(1 << 20),
  interpreter: z.string().startsWith("/", "must be an absolute path").default("/bin/sh"),
  args: z.array(z.string().max(4096)).max(64).default([]),
  timeoutS: z.number().positive().max(86_400).nullish(),
});

/**
 * Run an operator's script: written to a private temp file and run by its interpreter (an argument array, no
 * shell string), stdout and stderr streamed as log lines, the whole process group killed at the timeout.
 * A non-zero exit is permanent (the script said no); a timeout is transient.
 */
export const runScript: StepHandler = async ({ params, log, signal }) => {
  const p = parseParams("run_script", runScriptParams, params);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-script-"));
  const file = path.join(dir, "script");
  try {
    fs.writeFileSync(file, p.script, { mode: 0o700 });
    // The script text may carry secrets: log its size, never its content.
    log(`running a ${Buffer.byteLength(p.script)}-byte script with ${p.interpreter}${p.timeoutS ? `, timeout ${p.timeoutS} s` : ""}`);
    const started = Date.now();
    const r = await run(p.interpreter, [file, ...p.args], { log, signal, timeoutMs: p.timeoutS ? p.timeoutS * 1000 : undefined, captureLimit: 64 * 1024 });
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    if (r.code !== 0) throw permanent(`script exited with code ${r.code}: ${r.stderr.trim().split("\n").pop() || "no output"}`);
    log(`script finished in ${seconds} s`);
    return { exitCode: 0, seconds };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};
