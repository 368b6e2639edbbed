/**
 * A tiny BIOS-bootable disk image standing in for an installed operating system (tests, the lab, demos):
 * an MBR with syslinux, one FAT partition holding a kernel and an initramfs whose /init prints a marker on the
 * serial console. Built without mounting anything (mkfs.vfat -C, mtools, syslinux --install on files, sfdisk on
 * the image file), so it works in containers without loop devices.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { cpioChunks, type CpioEntry } from "./cpio";
import { run, which } from "./host";

export interface OsImageOptions {
  /** The kernel to boot (bzImage). */
  kernel: string;
  outDir: string;
  /** Printed on the serial console when the "installed" system is up. */
  marker: string;
  /** Whole disk size in MiB (default 32). */
  sizeMiB?: number;
}

export interface OsImage {
  /** The raw disk image. */
  raw: string;
  /** gzip of the raw image, as write_image streams it. */
  gz: string;
  size: number;
  /** sha256 of the raw image (what the agent verifies after decompressing). */
  sha256: string;
}

const PART_START = 2048; // sectors: 1 MiB alignment

function osInit(marker: string): string {
  return [
    "#!/bin/busybox sh",
    "/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null",
    "/bin/busybox mount -t proc proc /proc",
    `echo "${marker} uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"`,
    "/bin/busybox poweroff -f",
    "",
  ].join("\n");
}

/** @throws Error naming a missing tool (dosfstools, mtools, syslinux, fdisk) or a failed step */
export function buildOsImage(o: OsImageOptions): OsImage {
  if (!/^[A-Za-z0-9_.=-]+$/.test(o.marker)) throw new Error("marker: letters, digits and _ . = - only");
  const sizeMiB = o.sizeMiB ?? 32;
  const work = fs.mkdtempSync(path.join(o.outDir, ".os-image-"));
  try {
    const busybox = which("busybox") ?? "/bin/busybox";
    const entries: CpioEntry[] = [
      { name: "bin", kind: "dir", mode: 0o755 },
      { name: "bin/busybox", kind: "file", mode: 0o755, data: fs.readFileSync(busybox) },
      { name: "dev", kind: "dir", mode: 0o755 },
      { name: "init", kind: "file", mode: 0o755, data: Buffer.from(osInit(o.marker)) },
      { name: "proc", kind: "dir", mode: 0o755 },
    ];
    const initrd = path.join(work, "initrd.gz");
    fs.writeFileSync(initrd, zlib.gzipSync(Buffer.concat([...cpioChunks(entries)]), { level: 9 }));
    const cfg = path.join(work, "syslinux.cfg");
    fs.writeFileSync(cfg, "DEFAULT os\nPROMPT 0\nTIMEOUT 0\nLABEL os\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND console=ttyS0 quiet panic=-1\n");

    const partSectors = sizeMiB * 2048 - PART_START;
    const part = path.join(work, "part.img");
    run("mkfs.vfat", ["-C", "-F", "16", "-n", "RACKHAND", part, String(partSectors / 2)]);
    run("mcopy", ["-i", part, o.kernel, "::/vmlinuz"]);
    run("mcopy", ["-i", part, initrd, cfg, "::/"]);
    run("syslinux", ["--install", part]);

    const raw = path.join(o.outDir, "os.img");
    fs.rmSync(raw, { force: true });
    fs.writeFileSync(raw, "");
    fs.truncateSync(raw, sizeMiB * 1024 * 1024);
    run("sfdisk", ["-q", raw], { input: Buffer.from(`label: dos\nstart=${PART_START}, size=${partSectors}, type=6, bootable\n`) });
    const fd = fs.openSync(raw, "r+");
    try {
      // syslinux's MBR boot code: the first 440 bytes, before the partition table.
      const mbr = fs.readFileSync("/usr/lib/syslinux/mbr/mbr.bin");
      fs.writeSync(fd, mbr, 0, Math.min(440, mbr.length), 0);
      fs.writeSync(fd, fs.readFileSync(part), 0, undefined, PART_START * 512);
    } finally {
      fs.closeSync(fd);
    }
    const data = fs.readFileSync(raw);
    const gz = `${raw}.gz`;
    fs.writeFileSync(gz, zlib.gzipSync(data, { level: 6 }));
    return { raw, gz, size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex") };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
