#!/usr/bin/env bash
# Set up (first time) and start Rackhand on http://localhost:3000 with its data under ./data.
# On an empty database it seeds a demo lab (RACKHAND_DEMO=false to skip) and creates the admin account.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
export NODE_ENV=production NEXT_TELEMETRY_DISABLED=1
export RACKHAND_DEMO="${RACKHAND_DEMO:-true}"
# A 1 MiB young generation: the heap shrinks back after a burst (a 10,000-row list) instead of keeping its
# high-water mark; one V8 worker thread instead of four: ~5 MiB less at rest, the same list latency on 2 cores
# (docs/BENCHMARKS.md, memory). The same flags as `npm run serve` (server/runtime-flags.test.ts).
exec node --max-semi-space-size=1 --v8-pool-size=1 dist/server.mjs
