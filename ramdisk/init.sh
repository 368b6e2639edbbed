#!/bin/busybox sh
# /init of the Rackhand RAM disk (busybox sh, PID 1).
# Kernel command line: rackhand.api=<url> (required), rackhand.shell=1 (a shell instead of the agent),
# rackhand.rootfs=<url of rootfs.tar.zst> (the Debian variant: run the agent in that root file system instead),
# rackhand.payload=<url of agent.cpio.zst> + rackhand.payload_sha256=<hex> (Node.js, the tools and the agent, which
# the builder keeps out of this initrd so that the boot loader's transfer stays small).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /proc /sys /run /var
mount -t devpts devpts /dev/pts
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755,nosuid,nodev run /run
ln -sfn /run /var/run
ln -sfn /proc/self/fd /dev/fd

say() { echo "rackhand-init: $*"; }
rescue() {
  say "$*"
  say "dropping to a shell on the console (the agent is not running)"
  while :; do setsid cttyhack sh; done
}

API=
SHELL_ONLY=
ROOTFS=
PAYLOAD=
PAYLOAD_SHA256=
for word in $(cat /proc/cmdline); do
  case $word in
    rackhand.api=*) API=${word#*=} ;;
    rackhand.shell=1) SHELL_ONLY=1 ;;
    rackhand.rootfs=*) ROOTFS=${word#*=} ;;
    rackhand.payload=*) PAYLOAD=${word#*=} ;;
    rackhand.payload_sha256=*) PAYLOAD_SHA256=${word#*=} ;;
  esac
done

# Drivers the kernel does not have built in (list and order written by the builder).
KVER=$(uname -r)
while read -r module; do
  [ -n "$module" ] && insmod "/lib/modules/$KVER/$module" 2>&1 | grep -v 'File exists'
done </etc/modules.load
# Drivers of the NICs and storage controllers present, by their modaliases (modules.alias, written by the builder).
# Twice: a driver loaded in the first pass can bring up a bus whose devices need drivers of their own.
for pass in 1 2; do
  modprobe -qa $(cat /sys/bus/pci/devices/*/modalias /sys/bus/virtio/devices/*/modalias 2>/dev/null) 2>/dev/null
done
# UEFI only: the EFI variables, for the agent's efibootmgr (write_image's NVRAM boot entry); allowed under lockdown.
if [ -d /sys/firmware/efi ]; then
  modprobe -q efivarfs
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
fi
say "drivers: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

ip link set lo up
# Wait up to 10 s for NICs to appear, then try DHCP on each until one gets a lease.
i=0
while [ -z "$(ls /sys/class/net | grep -v '^lo$')" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
LEASED=
for ifname in $(ls /sys/class/net | grep -v '^lo$'); do
  ip link set "$ifname" up
  if udhcpc -i "$ifname" -s /etc/udhcpc.script -q -n -t 5 -T 2 -O hostname; then LEASED=$ifname; break; fi
done
[ -n "$SHELL_ONLY" ] && rescue "rackhand.shell=1 on the kernel command line"
[ -n "$LEASED" ] || rescue "no DHCP lease on any interface ($(ls /sys/class/net | tr '\n' ' '))"
[ -n "$API" ] || rescue "no rackhand.api=<url> on the kernel command line"
say "lease $(cat /run/lease.ip 2>/dev/null) on $LEASED, API $API"

if [ -n "$ROOTFS" ]; then
  # The Debian variant: stream the root file system into a tmpfs, hand it what stage 1 set up, and switch to it.
  say "fetching the root file system $ROOTFS"
  mkdir -p /newroot
  mount -t tmpfs -o mode=0755,size=90% rootfs /newroot || rescue "cannot mount a tmpfs for the root file system"
  set -o pipefail
  wget -q -O - "$ROOTFS" | zstd -dcq | tar -x -C /newroot || rescue "could not fetch or unpack $ROOTFS"
  set +o pipefail
  [ -x /newroot/usr/lib/rackhand/stage2 ] || rescue "$ROOTFS has no /usr/lib/rackhand/stage2"
  cp /etc/resolv.conf /newroot/etc/resolv.conf 2>/dev/null
  for d in dev proc sys run; do mkdir -p "/newroot/$d" && mount --move "/$d" "/newroot/$d"; done
  say "switching to the root file system ($(du -sm /newroot | cut -f1) MB)"
  exec switch_root /newroot /usr/lib/rackhand/stage2
fi

if [ ! -x /usr/bin/node ]; then
  # The payload: fetched whole, checked against the kernel command line's sha256, then unpacked over this root.
  [ -n "$PAYLOAD" ] || rescue "this initrd has no agent and there is no rackhand.payload=<url> on the kernel command line"
  say "fetching the agent payload $PAYLOAD"
  wget -q -O /tmp/payload "$PAYLOAD" || rescue "could not fetch $PAYLOAD"
  got=$(sha256sum /tmp/payload | cut -d' ' -f1)
  [ "$got" = "$PAYLOAD_SHA256" ] || rescue "$PAYLOAD has sha256 $got, the kernel command line says ${PAYLOAD_SHA256:-nothing}: refusing it (rebuilt RAM disk? the boot entry is rewritten at the next reconcile)"
  set -o pipefail
  zstd -dcq /tmp/payload | (cd / && cpio -i -d -m -u 2>/dev/null) || rescue "could not unpack $PAYLOAD"
  set +o pipefail
  rm -f /tmp/payload
  [ -x /usr/bin/node ] || rescue "$PAYLOAD has no /usr/bin/node"
  say "agent payload unpacked ($(du -sm /usr/bin/node | cut -f1) MB node)"
fi
node /usr/lib/rackhand/agent.mjs --api "$API"
rc=$?
sync
rescue "the agent exited with status $rc"
