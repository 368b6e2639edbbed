#!/bin/sh
# chassis_control program for OpenIPMI's ipmi_sim (lan.conf: chassis_control "<this> <statedir>"): gives the
# simulator a power state and a boot device. ipmi_sim calls "<this> <statedir> get power boot" and
# "<this> <statedir> set power 0|1 | reset 1 | boot pxe|default|...". State is kept in files so tests can read and
# flip them (<statedir>/power, <statedir>/boot, <statedir>/events.log).
# With <statedir>/qemu.args (QEMU's arguments, one per line: the virtual lab, lab/rack.ts) the chassis is a VM:
# power on starts QEMU with -boot n when the boot device is pxe and -boot c otherwise, like a server's firmware
# honouring the BMC's boot flag; power off stops it; reset restarts it; the power read is what the VM really is
# (a guest that powers itself off reads as off).
statedir=$1; shift
[ -n "$statedir" ] || { echo "no statedir"; exit 1; }
mkdir -p "$statedir"
op=$1; shift
log() { echo "$(date +%s.%N) $*" >> "$statedir/events.log"; }
vm() { [ -f "$statedir/qemu.args" ]; }
running() { [ -f "$statedir/qemu.pid" ] && kill -0 "$(cat "$statedir/qemu.pid" 2>/dev/null)" 2>/dev/null; }
start_vm() {
  running && return 0
  case $(cat "$statedir/boot" 2>/dev/null) in pxe) b=n net=1 disk=2 ;; *) b=c net=2 disk=1 ;; esac
  set --
  # UEFI VMs (OVMF ignores -boot): the NIC's and the disk's bootindex come from the boot device too.
  while IFS= read -r a; do
    case $a in *@BOOTINDEX_*) a=$(printf '%s' "$a" | sed "s/@BOOTINDEX_NET@/$net/; s/@BOOTINDEX_DISK@/$disk/") ;; esac
    set -- "$@" "$a"
  done <"$statedir/qemu.args"
  log "power on: qemu -boot $b"
  qemu-system-x86_64 "$@" -boot "$b" -daemonize -pidfile "$statedir/qemu.pid" >>"$statedir/qemu.log" 2>&1 || log "qemu failed to start"
}
stop_vm() {
  if running; then
    p=$(cat "$statedir/qemu.pid")
    kill "$p" 2>/dev/null
    i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null
    log "power off: qemu stopped"
  fi
  rm -f "$statedir/qemu.pid"
}
power() {
  if vm; then running && echo 1 || echo 0; else cat "$statedir/power" 2>/dev/null || echo 0; fi
}
case "$op" in
get)
    for p in "$@"; do
        case "$p" in
        power) echo "power:$(power)" ;;
        boot)  echo "boot:$(cat "$statedir/boot" 2>/dev/null || echo default)" ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
set)
    while [ $# -gt 0 ]; do
        p=$1; v=$2; shift 2 || { echo "No value for $p"; exit 1; }
        case "$p" in
        power) echo "$v" > "$statedir/power"; log "power $v"
               if vm; then if [ "$v" = 1 ]; then start_vm; else stop_vm; fi; fi ;;
        reset) log "reset $v"; if vm; then stop_vm; start_vm; fi ;;
        boot)  case "$v" in none|pxe|cdrom|bios|default) ;; *) echo "Invalid boot value: $v"; exit 1 ;; esac
               echo "$v" > "$statedir/boot"; log "boot $v" ;;
        identify) log "identify $v $1"; shift ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
