// Add up vitest's and Playwright's JSON reports into one closing line: "N passed, N failed".
// A report that is missing counts as a failure: a runner that did not run is not a pass.
import fs from "node:fs";

const [vitestFile, e2eFile] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
const read = (f) => {
  try {
    return JSON.parse(fs.readFileSync(f, "utf8"));
  } catch {
    return null;
  }
};
const v = read(vitestFile);
if (v) {
  passed += v.numPassedTests;
  failed += v.numFailedTests + (v.numFailedTestSuites ?? 0);
  skipped += v.numPendingTests + v.numTodoTests;
  console.log(`vitest: ${v.numPassedTests} passed, ${v.numFailedTests} failed, ${v.numFailedTestSuites ?? 0} failed files`);
} else {
  failed += 1;
  console.log(`vitest: no report at ${vitestFile}`);
}
const e = read(e2eFile);
if (e) {
  const s = e.stats;
  passed += s.expected;
  failed += s.unexpected + s.flaky;
  skipped += s.skipped;
  console.log(`playwright: ${s.expected} passed, ${s.unexpected} failed, ${s.flaky} flaky, ${s.skipped} skipped`);
} else {
  failed += 1;
  console.log(`playwright: no report at ${e2eFile}`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
