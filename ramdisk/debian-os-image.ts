/**
 * A real installed Debian for network tests: a debootstrap root file system (minbase + systemd + one network stack)
 * on a BIOS disk image, booted by the lab's Debian kernel. What the network VM test deploys with `configure_network`
 * and then reads back on the serial console and reaches over the network.
 *   MBR with syslinux's boot code
 *   partition 1  FAT16 "RHBOOT": syslinux, the kernel and a small busybox initramfs that loads the disk drivers,
 *                mounts LABEL=RHROOT read-only and switch_roots into systemd (no initramfs-tools run in a chroot)
 *   partition 2  ext4 "RHROOT": the Debian system, with the kernel modules its network needs (virtio_net, bonding,
 *                8021q and their dependencies, indexed by depmod)
 * The kernel command line has net.ifnames=0 (NICs are eth0, eth1, … in PCI order, as the machine's network model
 * names them) and console=ttyS0 (systemd starts a serial getty there). A oneshot unit waits for the network (an
 * IPv4 and a non-tentative IPv6 global address, at most 60 s), then prints on the console:
 *   rackhand-net: addr <`ip -br addr` line>            one per interface
 *   rackhand-net: bond <name> mode=<mode> slaves=<…> active=<…>
 *   rackhand-net: vlan <`ip -o -d link show type vlan` line>
 *   <marker> stack=<stack>
 * and answers on TCP port 4242 (systemd socket activation, on every address) with "rackhand-hello <hostname>", so a
 * test can reach it on each of its addresses without extra packages.
 * Built on the host, natively (debootstrap; mkfs.ext4 -d; no mounts, no loop devices).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { aptProxy, hostMirror, hostSuite } from "./debian-rootfs";
import { run, which } from "./host";
import { kernelModules } from "./modules";
import { busyboxInitramfs } from "./os-image";

/** The network stacks an image can carry; each is what configure_network's netConfig of that name writes for. */
export const DEBIAN_NET_STACKS = ["ifupdown", "netplan", "nm-keyfile"] as const;
export type DebianNetStack = (typeof DEBIAN_NET_STACKS)[number];

const BASE_PACKAGES = ["systemd", "systemd-sysv", "udev", "iproute2", "kmod"];
/** The packages of each stack (netplan renders for systemd-networkd, which is in the systemd package). */
export const STACK_PACKAGES: Record<DebianNetStack, string[]> = {
  ifupdown: ["ifupdown", "ifenslave"],
  netplan: ["netplan.io"],
  // debootstrap does not resolve virtual packages: NetworkManager needs a system bus (dbus) and logind (libpam-systemd).
  "nm-keyfile": ["network-manager", "dbus", "libpam-systemd"],
};
/** Loaded from the root file system by udev and the network stack. */
const ROOT_MODULES = ["virtio_net", "bonding", "8021q"];
/** In the initramfs: enough to read the root file system of a QEMU virtio disk. */
const INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"];
const TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old"];
const ROOT_LABEL = "RHROOT";
const SECTOR = 512;
const PART_START = 2048;
const BOOT_MIB = 20;

export interface DebianOsImageOptions {
  /** An extracted linux-image package of the same release (the lab's kernel). */
  kernelDir: string;
  outDir: string;
  /** The debootstrap result is kept here per suite, mirror and package list. */
  cacheDir: string;
  stack: DebianNetStack;
  /** Printed on the serial console after the network report. */
  marker: string;
  /** Default: this host's Debian release and the mirror its apt uses. */
  suite?: string;
  mirror?: string;
  log?: (line: string) => void;
}

export interface DebianOsImage {
  raw: string;
  /** zstd of the raw image (write_image format raw.zst). */
  zst: string;
  size: number;
  /** sha256 of the raw image. */
  sha256: string;
  rootPartition: number;
  stack: DebianNetStack;
  suite: string;
  packages: string[];
}

function initScript(): string {
  return [
    "#!/bin/busybox sh",
    "export PATH=/bin",
    "mount -t devtmpfs dev /dev 2>/dev/null",
    "mount -t proc proc /proc",
    "mount -t sysfs sys /sys",
    'while read -r m; do [ -n "$m" ] && insmod "/lib/modules/$m" 2>/dev/null; done </etc/modules.load',
    "mkdir -p /root",
    `i=0; until dev=$(findfs LABEL=${ROOT_LABEL} 2>/dev/null) || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done`,
    `if [ -z "$dev" ] || ! mount -t ext4 -o ro "$dev" /root; then echo "initramfs: root LABEL=${ROOT_LABEL} not found or not mountable"; poweroff -f; fi`,
    "mount --move /dev /root/dev",
    "umount /sys /proc",
    "exec switch_root /root /sbin/init",
    "",
  ].join("\n");
}

function reportScript(marker: string, stack: DebianNetStack): string {
  return [
    "#!/bin/sh",
    "# Written by Rackhand's image builder: the installed network, once it is up, on the serial console.",
    "i=0",
    "while [ $i -lt 60 ]; do",
    '  if [ -n "$(ip -4 -o addr show scope global)" ] && [ -n "$(ip -6 -o addr show scope global -tentative)" ]; then break; fi',
    "  sleep 1; i=$((i + 1))",
    "done",
    "ip -br addr | sed 's/^/rackhand-net: addr /'",
    "for b in /sys/class/net/*/bonding; do",
    '  [ -d "$b" ] || continue',
    '  n=$(basename "$(dirname "$b")")',
    '  echo "rackhand-net: bond $n mode=$(cut -d" " -f1 "$b/mode") slaves=$(cat "$b/slaves" | tr " " ",") active=$(cat "$b/active_slave")"',
    "done",
    "ip -o -d link show type vlan | sed 's/^/rackhand-net: vlan /'",
    `echo "${marker} stack=${stack} waited=$i"`,
    "",
  ].join("\n");
}

const REPORT_UNIT = `[Unit]
Description=Rackhand: the installed network on the serial console
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rackhand-net-report
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

/** TCP 4242 on every address (IPv4 and IPv6), one greeting per connection. */
export const HELLO_PORT = 4242;
const HELLO_SOCKET = `[Unit]
Description=Rackhand: a greeting on TCP ${HELLO_PORT}

[Socket]
ListenStream=${HELLO_PORT}
Accept=yes

[Install]
WantedBy=sockets.target
`;
const HELLO_SERVICE = `[Unit]
Description=Rackhand: a greeting

[Service]
ExecStart=/bin/sh -c 'echo "rackhand-hello $(cat /etc/hostname)"'
StandardInput=socket
StandardOutput=socket
`;

function base(o: DebianOsImageOptions, suite: string, mirror: string, packages: string[]): string {
  const key = crypto.createHash("sha256").update(`${suite} ${mirror} ${packages.join(",")}`).digest("hex").slice(0, 16);
  const dir = path.join(o.cacheDir, `debootstrap-${suite}-${key}`);
  if (fs.existsSync(dir)) return dir;
  const debootstrap = which("debootstrap");
  if (!debootstrap) throw new Error("debootstrap is not installed (Debian package debootstrap; scripts/install-system-deps.sh test)");
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  (o.log ?? (() => undefined))(`debootstrap ${suite} from ${mirror} (minbase + ${packages.join(" ")})`);
  const proxy = aptProxy();
  run(debootstrap, ["--variant=minbase", `--include=${packages.join(",")}`, suite, tmp, mirror], { env: { ...process.env, ...(proxy && { http_proxy: proxy }) } });
  fs.renameSync(tmp, dir);
  return dir;
}

function write(root: string, rel: string, content: string | Buffer, mode = 0o644): void {
  const to = path.join(root, rel);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.writeFileSync(to, content);
  fs.chmodSync(to, mode);
}

/** @throws Error naming a missing tool (debootstrap, syslinux, mtools, dosfstools, e2fsprogs, zstd, kmod) or a failed step */
export function buildDebianOsImage(o: DebianOsImageOptions): DebianOsImage {
  if (!/^[A-Za-z0-9_.=-]+$/.test(o.marker)) throw new Error("marker: letters, digits and _ . = - only");
  if (!DEBIAN_NET_STACKS.includes(o.stack)) throw new Error(`stack: one of ${DEBIAN_NET_STACKS.join(", ")}`);
  const suite = o.suite ?? hostSuite();
  if (!/^[a-z]+$/.test(suite)) throw new Error(`suite: a Debian codename like bookworm, not ${suite}`);
  const mirror = o.mirror ?? hostMirror(suite) ?? "http://deb.debian.org/debian";
  if (!/^https?:\/\/[A-Za-z0-9.:/_-]+$/.test(mirror)) throw new Error(`mirror: an http(s) URL, not ${mirror}`);
  const packages = [...BASE_PACKAGES, ...STACK_PACKAGES[o.stack]];
  const baseDir = base(o, suite, mirror, packages);

  fs.mkdirSync(o.outDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(o.outDir, ".debian-image-"));
  try {
    const stage = path.join(work, "root");
    run("cp", ["-a", baseDir, stage]);
    for (const p of TRIM) fs.rmSync(path.join(stage, p), { recursive: true, force: true });
    write(stage, "etc/hostname", "rackhand-debian\n");
    write(stage, "etc/fstab", `LABEL=${ROOT_LABEL} / ext4 defaults 0 0\n`);
    write(stage, "etc/machine-id", ""); // a fresh one at first boot
    fs.rmSync(path.join(stage, "var/lib/dbus/machine-id"), { force: true });
    // configure_network writes the network file; an image without one must not bring up anything by itself.
    if (o.stack === "ifupdown") write(stage, "etc/network/interfaces", "auto lo\niface lo inet loopback\n");
    write(stage, "usr/local/sbin/rackhand-net-report", reportScript(o.marker, o.stack), 0o755);
    write(stage, "etc/systemd/system/rackhand-net-report.service", REPORT_UNIT);
    fs.mkdirSync(path.join(stage, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
    fs.symlinkSync("/etc/systemd/system/rackhand-net-report.service", path.join(stage, "etc/systemd/system/multi-user.target.wants/rackhand-net-report.service"));
    write(stage, "etc/systemd/system/rackhand-hello.socket", HELLO_SOCKET);
    write(stage, "etc/systemd/system/rackhand-hello@.service", HELLO_SERVICE);
    fs.mkdirSync(path.join(stage, "etc/systemd/system/sockets.target.wants"), { recursive: true });
    fs.symlinkSync("/etc/systemd/system/rackhand-hello.socket", path.join(stage, "etc/systemd/system/sockets.target.wants/rackhand-hello.socket"));

    // The network drivers, where modprobe finds them (udev loads virtio_net; ifenslave, ip and NM load the rest).
    const rootMods = kernelModules(o.kernelDir, ROOT_MODULES);
    const modRoot = path.join(o.kernelDir, "lib/modules", rootMods.version);
    for (const m of rootMods.modules) write(stage, path.join("lib/modules", rootMods.version, m.rel), fs.readFileSync(m.file));
    for (const f of ["modules.builtin", "modules.builtin.modinfo", "modules.order"]) {
      if (fs.existsSync(path.join(modRoot, f))) write(stage, path.join("lib/modules", rootMods.version, f), fs.readFileSync(path.join(modRoot, f)));
    }
    run(which("depmod") ?? "depmod", ["-b", stage, rootMods.version]);

    // The initramfs: busybox, the disk drivers, /init.
    const kset = kernelModules(o.kernelDir, INITRD_MODULES);
    const initrd = path.join(work, "initrd.zst");
    fs.writeFileSync(path.join(work, "initrd.cpio"), busyboxInitramfs(kset.modules, initScript(), ["root"]));
    run("zstd", ["-q", "-19", "-f", path.join(work, "initrd.cpio"), "-o", initrd]);

    const boot = path.join(work, "boot.img");
    const bootSectors = BOOT_MIB * 2048;
    const cfg = path.join(work, "syslinux.cfg");
    fs.writeFileSync(cfg, "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\nLABEL debian\n  KERNEL /vmlinuz\n  INITRD /initrd.zst\n  APPEND console=ttyS0 net.ifnames=0 panic=-1\n");
    run("mkfs.vfat", ["-C", "-F", "16", "-n", "RHBOOT", boot, String(bootSectors / 2)]);
    run("mcopy", ["-i", boot, kset.vmlinuz, "::/vmlinuz"]);
    run("mcopy", ["-i", boot, initrd, cfg, "::/"]);
    run("syslinux", ["--install", boot]);

    // The root file system: what the system uses plus a quarter and 32 MiB free (journal, first-boot writes).
    const used = Number(run("du", ["-sb", stage]).split("\t")[0]);
    const rootMiB = Math.ceil((used * 1.25) / 2 ** 20) + 32;
    const rootSectors = rootMiB * 2048;
    const root = path.join(work, "root.img");
    run(which("mkfs.ext4") ?? "mkfs.ext4", ["-q", "-F", "-L", ROOT_LABEL, "-d", stage, root, `${rootMiB}M`]);
    fs.rmSync(stage, { recursive: true, force: true });

    const raw = path.join(work, "debian.img");
    const rootStart = PART_START + bootSectors;
    const totalSectors = rootStart + rootSectors + 2048; // 1 MiB free at the end (the wipe's tail)
    fs.writeFileSync(raw, "");
    fs.truncateSync(raw, totalSectors * SECTOR);
    run("sfdisk", ["-q", raw], { input: Buffer.from(`label: dos\nstart=${PART_START}, size=${bootSectors}, type=6, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`) });
    const fd = fs.openSync(raw, "r+");
    try {
      const mbr = fs.readFileSync("/usr/lib/syslinux/mbr/mbr.bin");
      fs.writeSync(fd, mbr, 0, Math.min(440, mbr.length), 0);
      fs.writeSync(fd, fs.readFileSync(boot), 0, undefined, PART_START * SECTOR);
      fs.writeSync(fd, fs.readFileSync(root), 0, undefined, rootStart * SECTOR);
    } finally {
      fs.closeSync(fd);
    }
    const data = fs.readFileSync(raw);
    const sha256 = crypto.createHash("sha256").update(data).digest("hex");
    run("zstd", ["-q", "-3", "-T0", "-f", raw, "-o", `${raw}.zst`]);
    const outRaw = path.join(o.outDir, `debian-${o.stack}.img`);
    fs.renameSync(raw, outRaw);
    fs.renameSync(`${raw}.zst`, `${outRaw}.zst`);
    return { raw: outRaw, zst: `${outRaw}.zst`, size: data.length, sha256, rootPartition: 2, stack: o.stack, suite, packages };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
