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
# (docs/BENCHMARKS.md, memory). glibc's malloc: two arenas, and memory above 128 KiB returned to the system at once
# (no dynamic thresholds that grow after a large burst): ~6 MiB less at rest. The same flags and environment as
# `npm run serve` and the benches (server/runtime-flags.test.ts).
export MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=131072
exec node --max-semi-space-size=1 --v8-pool-size=1 dist/server.mjs
