#!/usr/bin/env bash
# npm run lab [-- up|down|status] [options]: the virtual rack (lab/cli.ts). `up` (the default) first installs
# what it needs (QEMU, OpenIPMI, dnsmasq, ... as root) and builds Rackhand when the build is missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-up}"
case "$cmd" in
  down | status) ;;
  *) bash scripts/setup.sh test ;;
esac
exec node_modules/.bin/tsx lab/cli.ts "$@"
