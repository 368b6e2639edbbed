#!/usr/bin/env bash
# Prepare a checkout to run: system packages, npm dependencies, production build (only what is missing or stale).
#   scripts/setup.sh [runtime|test]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>=21&&a<23||a===20&&b>=9?"yes":"no")' 2>/dev/null || echo none)
if [ "$node_ok" != "yes" ]; then
  echo "rackhand: needs Node.js 20.9 to 22 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

bash scripts/install-system-deps.sh "$profile"

# better-sqlite3 builds from source; use the system's Node headers instead of downloading them.
if [ -d /usr/include/node ]; then export npm_config_nodedir=/usr; fi
export NEXT_TELEMETRY_DISABLED=1
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "rackhand: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

# Rebuild when the build is missing or any source is newer than it.
stamp=.next/BUILD_ID
if [ "${RACKHAND_SKIP_BUILD:-}" = "1" ]; then
  :
elif [ "${RACKHAND_FORCE_BUILD:-}" = "1" ] || [ ! -f "$stamp" ] || [ ! -f dist/server.mjs ] ||
  [ -n "$(find app components lib server agent public drizzle package.json next.config.mjs -newer "$stamp" -type f -print -quit 2>/dev/null)" ]; then
  echo "rackhand: building"
  npm run --silent build
fi
