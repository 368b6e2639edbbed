#!/usr/bin/env bash
# Set up (first time) and start Rackhand on http://localhost:3000 with its data under ./data.
# On an empty database it seeds a demo lab (RACKHAND_DEMO=false to skip) and creates the admin account.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
export NODE_ENV=production NEXT_TELEMETRY_DISABLED=1
export RACKHAND_DEMO="${RACKHAND_DEMO:-true}"
# A 1 MiB young generation: the heap shrinks back after a burst (a 10,000-row list) instead of keeping its
# high-water mark (docs/BENCHMARKS.md, memory).
exec node --max-semi-space-size=1 dist/server.mjs
