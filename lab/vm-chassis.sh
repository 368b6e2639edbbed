#!/bin/sh
# chassis_control program for the virtual lab's ipmi_sim BMCs: the BMC's power and boot device drive a QEMU VM.
# ipmi_sim runs "<this> <nodedir> get power boot" and "<this> <nodedir> set power 0|1 | reset 1 | boot pxe|default".
# <nodedir>/qemu.args holds QEMU's arguments, one per line (written by lab/rack.ts); the VM starts with -boot n
# when the boot device is pxe and -boot c otherwise, like a server's firmware honouring the BMC's boot flag.
# Power is what the VM really is: a guest that powers itself off reads as off.
dir=$1; shift
[ -d "$dir" ] || { echo "no node directory"; exit 1; }
op=$1; shift
log() { echo "$(date +%s.%N) $*" >>"$dir/events.log"; }
running() { [ -f "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid" 2>/dev/null)" 2>/dev/null; }
start_vm() {
  running && return 0
  case $(cat "$dir/boot" 2>/dev/null) in pxe) b=n ;; *) b=c ;; esac
  set --
  while IFS= read -r a; do set -- "$@" "$a"; done <"$dir/qemu.args"
  log "power on: qemu -boot $b"
  qemu-system-x86_64 "$@" -boot "$b" -daemonize -pidfile "$dir/qemu.pid" >>"$dir/qemu.log" 2>&1 || log "qemu failed to start"
}
stop_vm() {
  if running; then
    p=$(cat "$dir/qemu.pid")
    kill "$p" 2>/dev/null
    i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null
    log "power off: qemu stopped"
  fi
  rm -f "$dir/qemu.pid"
}
case "$op" in
get)
  for p in "$@"; do
    case "$p" in
    power) if running; then echo "power:1"; else echo "power:0"; fi ;;
    boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
    *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
set)
  while [ $# -gt 0 ]; do
    p=$1; v=$2; shift 2 || { echo "No value for $p"; exit 1; }
    case "$p" in
    power) if [ "$v" = 1 ]; then start_vm; else stop_vm; fi ;;
    reset) log "reset"; stop_vm; start_vm ;;
    boot) case "$v" in none|pxe|cdrom|bios|default) ;; *) echo "Invalid boot value: $v"; exit 1 ;; esac
          echo "$v" >"$dir/boot"; log "boot device $v" ;;
    identify) log "identify $v $1"; shift ;;
    *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
