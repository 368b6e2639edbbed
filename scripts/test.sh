#!/usr/bin/env bash
# The whole test suite: type check, unit/router/integration tests (vitest), one production build, the full
# deploy on a QEMU VM (vitest, lab/*.vm.test.ts), browser tests (Playwright + Debian Chromium, including one on
# the virtual lab). Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export NEXT_TELEMETRY_DISABLED=1
# The build happens once, below, after the fast tests.
RACKHAND_SKIP_BUILD=1 bash scripts/setup.sh test || exit 1
rm -rf test-results && mkdir -p test-results

status=0
echo "== type check"
npx tsc --noEmit || status=1

echo "== lint: layer rules and import cycles (dependency-cruiser, .dependency-cruiser.cjs), then ESLint (eslint.config.mjs, zero warnings)"
lint=ok
npm run --silent lint || { lint=failed; status=1; }

echo "== unit, router and integration tests (vitest)"
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=1

echo "== production build (once)"
RACKHAND_FORCE_BUILD=1 npm run --silent build || { echo "build failed"; status=1; }

echo "== full deploy on a QEMU virtual machine (vitest, lab/*.vm.test.ts)"
npx vitest run --config vitest.vm.config.ts --reporter=default --reporter=json --outputFile.json=test-results/vitest-vm.json || status=1

echo "== browser tests (playwright, chromium; the lab project brings up a VM)"
if [ -f .next/BUILD_ID ]; then npx playwright test || status=1; fi

[ "$lint" = ok ] || echo "lint failed (npm run lint): the suite fails (exit status 1)"
node scripts/summarize-tests.mjs test-results/vitest.json test-results/vitest-vm.json test-results/e2e-report.json || status=1
exit $status
