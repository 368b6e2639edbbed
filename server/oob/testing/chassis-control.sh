#!/bin/sh
# chassis_control program for OpenIPMI's ipmi_sim (lan.conf: chassis_control "<this> <statedir>"): gives the
# simulator a power state and a boot device. ipmi_sim calls "<this> <statedir> get power boot" and
# "<this> <statedir> set power 1 | reset 1 | boot pxe". State is kept in files so tests can read and flip it.
statedir=$1; shift
[ -n "$statedir" ] || { echo "no statedir"; exit 1; }
mkdir -p "$statedir"
op=$1; shift
log() { echo "$(date +%s.%N) $*" >> "$statedir/events.log"; }
case "$op" in
get)
    for p in "$@"; do
        case "$p" in
        power) echo "power:$(cat "$statedir/power" 2>/dev/null || echo 0)" ;;
        boot)  echo "boot:$(cat "$statedir/boot" 2>/dev/null || echo default)" ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
set)
    while [ $# -gt 0 ]; do
        p=$1; v=$2; shift 2 || { echo "No value for $p"; exit 1; }
        case "$p" in
        power) echo "$v" > "$statedir/power"; log "power $v" ;;
        reset) log "reset $v" ;;
        boot)  case "$v" in none|pxe|cdrom|bios|default) ;; *) echo "Invalid boot value: $v"; exit 1 ;; esac
               echo "$v" > "$statedir/boot"; log "boot $v" ;;
        identify) log "identify $v $1"; shift ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
