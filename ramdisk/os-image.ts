/**
 * A small disk image standing in for an installed operating system (tests, the lab, demos), for BIOS or UEFI:
 *   firmware "bios" (default): MBR with syslinux's boot code
 *     partition 1  FAT16 "RHBOOT": syslinux, the kernel and an initramfs (busybox + the modules to reach the root)
 *     partition 2  ext4 "RHROOT": the system's root file system, where configure_network writes the network files
 *   firmware "uefi": GPT, no BIOS boot code, bootable under Secure Boot with only Debian's and Microsoft's keys
 *     partition 1  EFI System Partition (FAT16 "RHESP"): \EFI\BOOT\BOOTX64.EFI = Debian's shim (shimx64.efi.signed,
 *                  Microsoft-signed), \EFI\BOOT\grubx64.efi = Debian's signed GRUB (grubx64.efi.signed: shim loads
 *                  grubx64.efi from its own directory; no fbx64.efi, so shim does not run the fallback), GRUB's config
 *                  at \EFI\debian\grub.cfg (the signed GRUB's built-in prefix) and \EFI\BOOT\grub.cfg (its
 *                  $cmdpath fallback), Debian's signed kernel and the initramfs
 *     partition 2  ext4 "RHROOT", as above
 * At boot the initramfs mounts the root, prints `<marker> uptime=… net=<files>` on the serial console followed by
 * each network file's lines ("os-net: …") and a line "os-firmware: efi=<yes|no> secureboot=<0|1|->", then powers
 * off or keeps a shell on the console.
 * Built without mounting anything (mkfs.vfat -C, mtools, syslinux --install on files, mkfs.ext4 -d, sfdisk on the
 * image file), so it works in containers without loop devices.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { cpioChunks, type CpioEntry } from "./cpio";
import { run, which } from "./host";
import { kernelModules } from "./modules";

export interface OsImageOptions {
  /** An extracted linux-image package (boot/vmlinuz-*, lib/modules/*): the kernel and its modules. */
  kernelDir: string;
  outDir: string;
  /** Printed on the serial console when the "installed" system is up. */
  marker: string;
  /** Whole disk size in MiB (default 48, at least 40). */
  sizeMiB?: number;
  /** After the marker: power off (tests) or keep a shell on the console (the lab). Default poweroff. */
  after?: "poweroff" | "shell";
  /** File name in outDir (default os.img; the gzip is <name>.gz). */
  name?: string;
  /** Which firmware boots it (default bios): see the layouts above. */
  firmware?: OsImageFirmware;
}

export type OsImageFirmware = "bios" | "uefi";

export interface OsImage {
  /** The raw disk image. */
  raw: string;
  /** gzip of the raw image, as write_image streams it. */
  gz: string;
  size: number;
  /** sha256 of the raw image (what the agent verifies after decompressing). */
  sha256: string;
  /** The root file system's partition number (configure_network's rootPartition is <disk><n>, e.g. /dev/vda2). */
  rootPartition: number;
  firmware: OsImageFirmware;
}

const SECTOR = 512;
const PART_START = 2048; // sectors: 1 MiB alignment
const BOOT_MIB = 20;
// The ESP holds shim (1 MB), GRUB (4.2 MB), the kernel (8 MB) and the initramfs (~3 MB).
const ESP_MIB = 24;
const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/** Debian's signed boot loaders (shim-signed, grub-efi-amd64-signed). */
export const SIGNED_SHIM = "/usr/lib/shim/shimx64.efi.signed";
export const SIGNED_GRUB = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
const ROOT_LABEL = "RHROOT";
// Enough to read the root file system of a QEMU virtio disk (and SATA) with the Debian kernel.
// efivarfs: to read the SecureBoot variable under UEFI (it fails to load under BIOS, which is fine).
const OS_MODULES = ["virtio_pci", "virtio_blk", "ahci", "sd_mod", "ext4", "crc32c_generic", "efivarfs"];
// Where the OS families keep their network configuration (what configure_network writes).
const NET_PATHS = ["etc/network/interfaces", "etc/network/interfaces.d", "etc/netplan", "etc/NetworkManager/system-connections", "etc/sysconfig/network-scripts"];

function osInit(marker: string, after: "poweroff" | "shell"): string {
  return [
    "#!/bin/busybox sh",
    "export PATH=/bin",
    "/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null",
    "mount -t proc proc /proc",
    "mount -t sysfs sys /sys",
    "while read -r m; do [ -n \"$m\" ] && insmod \"/lib/modules/$m\" 2>/dev/null; done </etc/modules.load",
    "mkdir -p /root",
    "i=0; until dev=$(findfs LABEL=" + ROOT_LABEL + " 2>/dev/null) || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done",
    "net=none",
    "if [ -n \"$dev\" ] && mount -t ext4 -o ro \"$dev\" /root; then",
    `  net=$(cd /root && for p in ${NET_PATHS.join(" ")}; do [ -e "$p" ] && find "$p" -type f; done | tr '\\n' ',' | sed 's/,$//')`,
    "  [ -n \"$net\" ] || net=none",
    "else",
    "  echo \"os: root file system LABEL=" + ROOT_LABEL + " not found or not mountable\"",
    "fi",
    `echo "${marker} uptime=$(cut -d' ' -f1 /proc/uptime) host=$(cat /root/etc/hostname 2>/dev/null) net=$net"`,
    "[ \"$net\" = none ] || for f in $(echo \"$net\" | tr ',' ' '); do sed \"s|^|os-net: /$f: |\" \"/root/$f\"; done",
    // The firmware that booted it: /sys/firmware/efi exists only under UEFI; SecureBoot is the last byte of the EFI
    // variable (efivarfs is a module: no variable, "-"; the kernel's own "Secure boot enabled" line says it too).
    "efi=no; [ -d /sys/firmware/efi ] && efi=yes && mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null",
    "sb=-; for v in /sys/firmware/efi/efivars/SecureBoot-*; do [ -r \"$v\" ] && sb=$(od -An -tu1 \"$v\" | awk '{print $NF}'); done",
    `echo "os-firmware: efi=$efi secureboot=$sb"`,
    after === "poweroff" ? "poweroff -f" : "while :; do setsid cttyhack sh; done",
    "",
  ].join("\n");
}

/** @throws Error naming a missing tool or file (dosfstools, mtools, syslinux, fdisk, e2fsprogs, shim-signed, grub-efi-amd64-signed) or a failed step */
export function buildOsImage(o: OsImageOptions): OsImage {
  if (!/^[A-Za-z0-9_.=-]+$/.test(o.marker)) throw new Error("marker: letters, digits and _ . = - only");
  const firmware = o.firmware ?? "bios";
  if (firmware !== "bios" && firmware !== "uefi") throw new Error("firmware: bios or uefi");
  const sizeMiB = o.sizeMiB ?? 48;
  if (sizeMiB < 40) throw new Error("sizeMiB: at least 40");
  if (firmware === "uefi") for (const f of [SIGNED_SHIM, SIGNED_GRUB]) if (!fs.existsSync(f)) throw new Error(`${f} is missing (scripts/install-system-deps.sh installs shim-signed and grub-efi-amd64-signed)`);
  const work = fs.mkdtempSync(path.join(o.outDir, ".os-image-"));
  try {
    const kset = kernelModules(o.kernelDir, OS_MODULES);
    const initrd = path.join(work, "initrd.gz");
    fs.writeFileSync(initrd, zlib.gzipSync(busyboxInitramfs(kset.modules, osInit(o.marker, o.after ?? "poweroff")), { level: 9 }));
    const cmdline = "console=ttyS0 quiet panic=-1";
    const bootSectors = (firmware === "uefi" ? ESP_MIB : BOOT_MIB) * 2048;
    const boot = path.join(work, "boot.img");
    if (firmware === "bios") {
      // Partition 1: FAT boot partition with syslinux.
      const cfg = path.join(work, "syslinux.cfg");
      fs.writeFileSync(cfg, `DEFAULT os\nPROMPT 0\nTIMEOUT 0\nLABEL os\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND ${cmdline}\n`);
      run("mkfs.vfat", ["-C", "-F", "16", "-n", "RHBOOT", boot, String(bootSectors / 2)]);
      run("mcopy", ["-i", boot, kset.vmlinuz, "::/vmlinuz"]);
      run("mcopy", ["-i", boot, initrd, cfg, "::/"]);
      run("syslinux", ["--install", boot]);
    } else {
      // Partition 1: the EFI System Partition with shim at the removable-media path and the signed GRUB beside it.
      const cfg = path.join(work, "grub.cfg");
      fs.writeFileSync(
        cfg,
        ["set timeout=0", "set default=0", 'menuentry "Rackhand stand-in OS" {', `  linux /vmlinuz ${cmdline}`, "  initrd /initrd.gz", "}", ""].join("\n"),
      );
      run("mkfs.vfat", ["-C", "-F", "16", "-n", "RHESP", boot, String(bootSectors / 2)]);
      run("mmd", ["-i", boot, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"]);
      run("mcopy", ["-i", boot, SIGNED_SHIM, "::/EFI/BOOT/BOOTX64.EFI"]);
      run("mcopy", ["-i", boot, SIGNED_GRUB, "::/EFI/BOOT/grubx64.efi"]);
      run("mcopy", ["-i", boot, cfg, "::/EFI/BOOT/grub.cfg"]);
      run("mcopy", ["-i", boot, cfg, "::/EFI/debian/grub.cfg"]);
      run("mcopy", ["-i", boot, kset.vmlinuz, "::/vmlinuz"]);
      run("mcopy", ["-i", boot, initrd, "::/initrd.gz"]);
    }

    // Partition 2: the root file system, populated from a directory (mkfs.ext4 -d: no mount needed).
    // 1 MiB left free at the end (wipe's tail; GPT's backup header and entries live there too).
    const rootSectors = sizeMiB * 2048 - PART_START - bootSectors - 2048;
    const tree = path.join(work, "root");
    for (const d of ["etc/network", "etc/netplan", "etc/NetworkManager/system-connections", "etc/sysconfig/network-scripts", "var", "tmp"]) {
      fs.mkdirSync(path.join(tree, d), { recursive: true });
    }
    fs.writeFileSync(path.join(tree, "etc/hostname"), "rackhand-os\n");
    fs.writeFileSync(path.join(tree, "etc/os-release"), 'NAME="Rackhand stand-in OS"\nID=rackhand-os\n');
    const root = path.join(work, "root.img");
    run(which("mkfs.ext4") ?? "mkfs.ext4", ["-q", "-F", "-L", ROOT_LABEL, "-E", "root_owner=0:0", "-d", tree, root, `${rootSectors / 2}k`]);

    const name = o.name ?? "os.img";
    const raw = path.join(o.outDir, name);
    const tmpRaw = path.join(work, name);
    fs.writeFileSync(tmpRaw, "");
    fs.truncateSync(tmpRaw, sizeMiB * 1024 * 1024);
    const rootStart = PART_START + bootSectors;
    const table =
      firmware === "bios"
        ? `label: dos\nstart=${PART_START}, size=${bootSectors}, type=6, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`
        : `label: gpt\nstart=${PART_START}, size=${bootSectors}, type=${ESP_TYPE}, name="EFI System"\nstart=${rootStart}, size=${rootSectors}, type=${LINUX_FS_TYPE}, name="root"\n`;
    run("sfdisk", ["-q", tmpRaw], { input: Buffer.from(table) });
    const fd = fs.openSync(tmpRaw, "r+");
    try {
      // BIOS: syslinux's MBR boot code, the first 440 bytes, before the partition table. UEFI: none (GPT's
      // protective MBR only), so the image is UEFI-only, as many cloud images are not.
      if (firmware === "bios") {
        const mbr = fs.readFileSync("/usr/lib/syslinux/mbr/mbr.bin");
        fs.writeSync(fd, mbr, 0, Math.min(440, mbr.length), 0);
      }
      fs.writeSync(fd, fs.readFileSync(boot), 0, undefined, PART_START * SECTOR);
      fs.writeSync(fd, fs.readFileSync(root), 0, undefined, rootStart * SECTOR);
    } finally {
      fs.closeSync(fd);
    }
    const data = fs.readFileSync(tmpRaw);
    const gzTmp = `${tmpRaw}.gz`;
    fs.writeFileSync(gzTmp, zlib.gzipSync(data, { level: 6 }));
    fs.renameSync(tmpRaw, raw);
    fs.renameSync(gzTmp, `${raw}.gz`);
    return { raw, gz: `${raw}.gz`, size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex"), rootPartition: 2, firmware };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A busybox initramfs (newc cpio, uncompressed): busybox with a link per applet, the kernel modules flat in
 * /lib/modules with their load order in /etc/modules.load, `init`, and the empty mount points (plus `extraDirs`).
 */
export function busyboxInitramfs(modules: readonly { file: string }[], init: string, extraDirs: readonly string[] = []): Buffer {
  const busybox = which("busybox") ?? "/bin/busybox";
  const dir = (name: string): CpioEntry => ({ name, kind: "dir", mode: 0o755 });
  const entries: CpioEntry[] = [
    dir("bin"),
    { name: "bin/busybox", kind: "file", mode: 0o755, data: fs.readFileSync(busybox) },
    ...run(busybox, ["--list"])
      .split("\n")
      .filter((a) => a && a !== "busybox")
      .map((a): CpioEntry => ({ name: `bin/${a}`, kind: "symlink", mode: 0o777, data: Buffer.from("busybox") })),
    dir("dev"),
    dir("etc"),
    { name: "etc/modules.load", kind: "file", mode: 0o644, data: Buffer.from(modules.map((m) => path.basename(m.file)).join("\n") + "\n") },
    { name: "init", kind: "file", mode: 0o755, data: Buffer.from(init) },
    dir("lib"),
    dir("lib/modules"),
    ...modules.map((m): CpioEntry => ({ name: `lib/modules/${path.basename(m.file)}`, kind: "file", mode: 0o644, data: fs.readFileSync(m.file) })),
    dir("proc"),
    dir("sys"),
    ...extraDirs.map(dir),
  ];
  entries.sort((a, b) => a.name.localeCompare(b.name));
  return Buffer.concat([...cpioChunks(entries)]);
}
