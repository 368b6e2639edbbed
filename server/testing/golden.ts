import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";

/**
 * Compare rendered text with a checked-in golden file. `UPDATE_GOLDEN=1 npx vitest run ...` rewrites them
 * (review the diff); a missing golden file fails the test rather than being created silently.
 */
export function expectGolden(dir: string, name: string, actual: string): void {
  const file = path.join(dir, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
  }
  if (!fs.existsSync(file)) throw new Error(`golden file ${file} is missing (run with UPDATE_GOLDEN=1 and review it)`);
  expect(actual).toBe(fs.readFileSync(file, "utf8"));
}
