#!/usr/bin/env bash
# Install the Debian/Ubuntu packages Rackhand needs, only those missing.
#   runtime: build tools for the native SQLite addon (better-sqlite3 compiles from source here), ipmitool (BMCs),
#            dnsmasq (DHCP/TFTP server run by netboot's managed mode), the boot loaders netboot copies into its
#            TFTP root (pxelinux, syslinux-common, ipxe, shim-signed, grub-efi-amd64-signed),
#            debian-installer-12-netboot-amd64 (d-i kernel + initrd, placed in the HTTP boot tree at start-up),
#            apt-cacher-ng (the package proxy Rackhand runs in proxy mode "managed"; installed without starting or
#            enabling the package's own daemon, which would hold port 3142)
#   test:    runtime + Debian's Chromium for the browser tests, OpenIPMI's ipmi_sim (simulated BMCs),
#            busybox-static (udhcpc/tftp clients) and iproute2 (network namespaces) for the netboot integration test,
#            what `npm run ramdisk` needs (busybox-static, fdisk for sfdisk, zstd, xz-utils, binutils for strip),
#            and QEMU with the tools that build the stand-in OS disk image (dosfstools, mtools, syslinux, e2fsprogs),
#            debootstrap for the Debian agent environment (the VM test deploys from it), graphviz (`dot`) for the
#            layer picture dependency-cruiser draws (`npm run lint:graph`, docs/layers.svg),
#            ovmf (UEFI firmware for the UEFI VM tests) and efibootmgr (UEFI boot entries, shipped in the RAM disk),
#            the network-file checkers: network-manager (nmcli --offline), python3-gi + gir1.2-nm-1.0 (libnm's
#            keyfile reader), netplan.io (netplan generate) and ifupdown (ifup --no-act); on a host with systemd
#            network-manager's daemon starts too (it leaves interfaces listed in /etc/network/interfaces alone),
#            postgresql (the PostgreSQL tests start their own private server from its binaries; the package's own
#            "main" cluster service is neither started nor enabled, like apt-cacher-ng's)
# Needs root (or sudo) when something is missing; prints what and why otherwise.
set -euo pipefail
profile="${1:-runtime}"

pkgs=(python3 make g++ ca-certificates ipmitool dnsmasq pxelinux syslinux-common ipxe shim-signed grub-efi-amd64-signed debian-installer-12-netboot-amd64 apt-cacher-ng)
if [ "$profile" = "test" ]; then
  pkgs+=(chromium fonts-dejavu-core openipmi busybox-static iproute2 fdisk zstd xz-utils binutils)
  pkgs+=(qemu-system-x86 ipxe-qemu dosfstools mtools syslinux syslinux-common e2fsprogs debootstrap graphviz ovmf efibootmgr debconf)
  pkgs+=(network-manager python3-gi gir1.2-nm-1.0 netplan.io ifupdown)
  pkgs+=(kmod) # depmod indexes the network modules of the VM network test's Debian image (lab/net-deploy.vm.test.ts)
  pkgs+=(postgresql)
elif [ "$profile" = "ramdisk" ]; then
  pkgs+=(busybox-static fdisk zstd xz-utils binutils debootstrap efibootmgr)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "rackhand: missing system packages: ${missing[*]} (and no apt-get here: install them by hand)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "rackhand: missing system packages: ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
fi
echo "rackhand: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's apt-cacher-ng package starts its own daemon on port 3142 (all addresses), which would take the port of
# Rackhand's managed proxy (proxy mode "managed", default port 3142). Rackhand runs its own instance: when this
# script installs the package, its daemon is neither started (policy-rc.d, honoured by invoke-rc.d and
# deb-systemd-invoke) nor enabled at boot. A policy-rc.d already present (containers) is left as it is.
acng_new=""
[[ " ${missing[*]} " == *" apt-cacher-ng "* ]] && acng_new=1
pg_new=""
[[ " ${missing[*]} " == *" postgresql "* ]] && pg_new=1
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ -n "$acng_new$pg_new" ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# rackhand install-system-deps.sh: no service starts while it installs packages\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=1
fi
finish() {
  if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi
  if [ -n "$acng_new" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now apt-cacher-ng.service >/dev/null 2>&1 || true
    echo "rackhand: apt-cacher-ng installed without its own daemon (Rackhand runs the managed proxy itself)"
  fi
  if [ -n "$pg_new" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now postgresql.service >/dev/null 2>&1 || true
  fi
}
# Another apt may hold the dpkg lock for a moment (unattended upgrades, a parallel job): retry.
for attempt in 1 2 3 4 5; do
  if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    finish
    exit 0
  fi
  echo "rackhand: apt-get failed (attempt $attempt); retrying in 5 s" >&2
  sleep 5
done
finish
echo "rackhand: could not install ${missing[*]}" >&2
exit 1
