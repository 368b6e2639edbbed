#!/usr/bin/env bash
# Set up (first time) and start Rackhand on http://localhost:3000 with its data under ./data.
# On an empty database it seeds a demo lab (RACKHAND_DEMO=false to skip) and creates the admin account.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
export NODE_ENV=production NEXT_TELEMETRY_DISABLED=1
export RACKHAND_DEMO="${RACKHAND_DEMO:-true}"
exec node dist/server.mjs
