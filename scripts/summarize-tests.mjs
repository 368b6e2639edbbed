// Add up the runners' JSON reports into one closing line: "N passed, N failed".
//   node scripts/summarize-tests.mjs <report.json>...   (vitest and Playwright reports, told apart by shape)
// A report that is missing counts as a failure: a runner that did not run is not a pass.
import fs from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of process.argv.slice(2)) {
  let r = null;
  try {
    r = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    /* missing or unreadable */
  }
  if (r && typeof r.numPassedTests === "number") {
    // A file that failed without a failing test (it did not load, a hook threw) counts once; numFailedTestSuites
    // would also count the describe blocks around a failing test.
    const brokenFiles = (r.testResults ?? []).filter((f) => f.status === "failed" && !(f.assertionResults ?? []).some((a) => a.status === "failed")).length;
    passed += r.numPassedTests;
    failed += r.numFailedTests + brokenFiles;
    skipped += r.numPendingTests + r.numTodoTests;
    console.log(`vitest (${file}): ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${brokenFiles} files failed outside a test`);
  } else if (r && r.stats) {
    const s = r.stats;
    passed += s.expected;
    failed += s.unexpected + s.flaky;
    skipped += s.skipped;
    console.log(`playwright (${file}): ${s.expected} passed, ${s.unexpected} failed, ${s.flaky} flaky, ${s.skipped} skipped`);
  } else {
    failed += 1;
    console.log(`no test report at ${file}`);
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
