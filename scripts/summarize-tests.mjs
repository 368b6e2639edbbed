// Add up the runners' JSON reports into one closing line: "N passed, N failed".
//   node scripts/summarize-tests.mjs <report.json>...   (vitest and Playwright reports, told apart by shape)
// A report that is missing counts as a failure: a runner that did not run is not a pass.
import fs from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
// The names of what failed, printed just before the closing line: a CI log is often kept only by its tail.
const failures = [];
const firstLines = (text, n = 3) =>
  String(text ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, n)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
const relative = (p) => String(p ?? "").replace(`${process.cwd()}/`, "");
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
    for (const f of r.testResults ?? []) {
      const failedTests = (f.assertionResults ?? []).filter((a) => a.status === "failed");
      for (const a of failedTests) failures.push({ where: `${relative(f.name)} › ${a.fullName}`, why: firstLines((a.failureMessages ?? []).join("\n")) });
      if (f.status === "failed" && failedTests.length === 0) failures.push({ where: `${relative(f.name)} (outside a test)`, why: firstLines(f.message) });
    }
    console.log(`vitest (${file}): ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${brokenFiles} files failed outside a test`);
  } else if (r && r.stats) {
    const s = r.stats;
    const walk = (suite, titles) => {
      for (const child of suite.suites ?? []) walk(child, [...titles, child.title]);
      for (const spec of suite.specs ?? [])
        for (const t of spec.tests ?? []) {
          if (t.status !== "unexpected" && t.status !== "flaky") continue;
          const errors = (t.results ?? []).flatMap((res) => (res.errors ?? []).map((e) => e.message));
          failures.push({ where: `${[...titles, spec.title].filter(Boolean).join(" › ")} (${t.status})`, why: firstLines(errors.join("\n")) });
        }
    };
    for (const suite of r.suites ?? []) walk(suite, [suite.title]);
    passed += s.expected;
    failed += s.unexpected + s.flaky;
    skipped += s.skipped;
    console.log(`playwright (${file}): ${s.expected} passed, ${s.unexpected} failed, ${s.flaky} flaky, ${s.skipped} skipped`);
  } else {
    failed += 1;
    console.log(`no test report at ${file}`);
  }
}
if (failures.length > 0) {
  console.log(`failed (${failures.length}):`);
  for (const f of failures.slice(0, 20)) {
    console.log(`  ✗ ${f.where}`);
    for (const line of f.why) console.log(`      ${line}`);
  }
  if (failures.length > 20) console.log(`  … and ${failures.length - 20} more`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
