#!/bin/sh
# Stage 2 of the Rackhand agent environment, Debian variant: PID 1 after the busybox RAM disk's /init unpacked
# the root file system into a tmpfs and switch_rooted into it. /dev, /proc, /sys and /run were moved here from
# stage 1, and the NIC keeps the address stage 1's DHCP gave it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mkdir -p /dev/pts /dev/shm /tmp
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
chmod 1777 /tmp

say() { echo "rackhand-init: $*"; }
rescue() {
  say "$*"
  say "dropping to a shell on the console (the agent is not running)"
  while :; do setsid -c bash -l </dev/console >/dev/console 2>&1 || sleep 1; done
}

API=
for word in $(cat /proc/cmdline); do
  case $word in
    rackhand.api=*) API=${word#*=} ;;
  esac
done
[ -n "$API" ] || rescue "no rackhand.api=<url> on the kernel command line"
hostname rackhand-agent
say "Debian $(cat /etc/debian_version) root file system up, lease $(cat /run/lease.ip 2>/dev/null), API $API"

node /usr/lib/rackhand/agent.mjs --api "$API"
rc=$?
sync
rescue "the agent exited with status $rc"
