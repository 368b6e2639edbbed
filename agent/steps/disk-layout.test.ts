import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bootability, ESP_TYPE, FALLBACK_LOADER, findFatFile, readPartitionTable, type ReadAt } from "./disk-layout";

// Real tables from sfdisk and real FAT file systems from mkfs.vfat + mtools (the images the builder makes are
// checked in ramdisk/os-image.int.test.ts); hand-made bytes for the hostile cases.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-layout-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1 << 20;

function tool(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed or is missing (scripts/install-system-deps.sh test): ${r.error?.message ?? r.stderr}`);
}

function disk(name: string, table: string, mib = 8): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, Buffer.alloc(mib * MiB));
  tool("sfdisk", ["-q", f], table);
  return f;
}

const readerOf =
  (buf: Buffer): ReadAt =>
  (off, len) =>
    buf.subarray(Math.max(0, off), Math.max(0, off + len));

/** A FAT file system image made by mkfs.vfat, with `files` (path → content) copied in by mtools. */
function fat(fatBits: 12 | 16 | 32, files: Record<string, Buffer>, kib = { 12: 2048, 16: 16 * 1024, 32: 40 * 1024 }[fatBits]): Buffer {
  const f = path.join(dir, `fat${fatBits}-${crypto.randomBytes(4).toString("hex")}.img`);
  tool("mkfs.vfat", ["-C", "-F", String(fatBits), f, String(kib)]);
  for (const [p, data] of Object.entries(files)) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) spawnSync("mmd", ["-D", "s", "-i", f, `::/${parts.slice(0, i).join("/")}`]);
    const src = path.join(dir, "src");
    fs.writeFileSync(src, data);
    tool("mcopy", ["-i", f, src, `::/${p}`]);
  }
  return fs.readFileSync(f);
}

const pe = Buffer.concat([Buffer.from("MZ"), crypto.randomBytes(5000)]);

describe("readPartitionTable + bootability", () => {
  it("GPT with an EFI System Partition: UEFI-capable; no boot code: not BIOS-capable", () => {
    const f = disk("gpt-esp", `label: gpt\nstart=2048, size=4096, type=${ESP_TYPE}\nstart=6144, size=4096, type=linux\n`);
    const t = readPartitionTable(fs.readFileSync(f).subarray(0, MiB));
    expect(t).toMatchObject({ scheme: "gpt", sectorSize: 512, bootCode: false });
    expect(t.partitions.map((p) => [p.number, p.start, p.size, p.esp])).toEqual([
      [1, 2048 * 512, 4096 * 512, true],
      [2, 6144 * 512, 4096 * 512, false],
    ]);
    expect(bootability(t)).toEqual({ uefi: true, bios: false, summary: "GPT, 2 partitions, EFI System Partition #1 (2 MiB), no BIOS boot code" });
  });

  it("GPT with a BIOS boot partition and boot code: BIOS-capable (and UEFI too with an ESP: a hybrid image)", () => {
    const f = disk("gpt-hybrid", `label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, size=4096, type=${ESP_TYPE}\n`);
    const head = fs.readFileSync(f).subarray(0, MiB);
    expect(bootability(readPartitionTable(head))).toMatchObject({ uefi: true, bios: false });
    head.fill(0x90, 0, 440); // boot code in the protective MBR
    expect(bootability(readPartitionTable(head))).toMatchObject({ uefi: true, bios: true, summary: expect.stringContaining("a BIOS boot partition") });
  });

  it("MBR with boot code: BIOS-capable; MBR type 0xEF is an ESP; MBR without code boots nothing", () => {
    const f = disk("mbr", "label: dos\nstart=2048, size=4096, type=83, bootable\n");
    const head = fs.readFileSync(f).subarray(0, MiB);
    expect(bootability(readPartitionTable(head))).toEqual({ uefi: false, bios: false, summary: "MBR, 1 partition, no EFI System Partition, no BIOS boot code" });
    head.fill(0xfa, 0, 440);
    const t = readPartitionTable(head);
    expect(t.partitions[0]).toMatchObject({ number: 1, type: "0x83", legacyBootable: true, esp: false });
    expect(bootability(t)).toMatchObject({ uefi: false, bios: true });
    const ef = disk("mbr-ef", "label: dos\nstart=2048, size=4096, type=ef\n");
    expect(bootability(readPartitionTable(fs.readFileSync(ef).subarray(0, MiB)))).toMatchObject({ uefi: true });
  });

  it("hostile or broken heads give 'no partition table' with a reason, never a throw", () => {
    expect(readPartitionTable(Buffer.alloc(100))).toMatchObject({ scheme: "none", problem: "only 100 bytes" });
    expect(readPartitionTable(Buffer.alloc(MiB))).toMatchObject({ scheme: "none", problem: expect.stringContaining("no MBR signature") });
    for (let i = 0; i < 200; i++) {
      const b = crypto.randomBytes(4096);
      if (i % 2) b.writeUInt16LE(0xaa55, 510);
      if (i % 4 === 1) {
        b[446 + 4] = 0xee;
        b.write("EFI PART", 512, "latin1");
      }
      expect(() => bootability(readPartitionTable(b))).not.toThrow();
    }
    const f = disk("gpt-hostile", `label: gpt\nstart=2048, size=4096, type=${ESP_TYPE}\n`);
    const head = fs.readFileSync(f).subarray(0, MiB);
    const bad = (patch: (b: Buffer) => void) => {
      const b = Buffer.from(head);
      patch(b);
      return readPartitionTable(b);
    };
    expect(bad((b) => b.writeUInt32LE(0xffffffff, 512 + 80))).toMatchObject({ scheme: "none", problem: expect.stringContaining("entries") });
    expect(bad((b) => b.writeUInt32LE(7, 512 + 84))).toMatchObject({ scheme: "none", problem: "GPT entry size 7 is invalid" });
    expect(bad((b) => b.writeBigUInt64LE(0xffffffffffffn, 512 + 72))).toMatchObject({ scheme: "none", problem: expect.stringContaining("outside the first") });
    expect(bad((b) => b.writeBigUInt64LE(0n, 512 + 72))).toMatchObject({ scheme: "none" });
    expect(bad((b) => b.fill(0, 512, 520))).toMatchObject({ scheme: "none", problem: "protective MBR without a GPT header" });
    // Truncated to the header: the entries are not there.
    expect(readPartitionTable(head.subarray(0, 1024))).toMatchObject({ scheme: "none", problem: expect.stringContaining("outside the first 1024 bytes") });
  });
});

describe("findFatFile", () => {
  for (const bits of [12, 16, 32] as const) {
    it(`finds \\EFI\\BOOT\\BOOTX64.EFI on FAT${bits} (names without case, as FAT compares them)`, () => {
      const img = fat(bits, { "EFI/BOOT/bootx64.efi": pe, "EFI/debian/grub.cfg": Buffer.from("x") });
      const r = findFatFile(readerOf(img), 0, img.length, FALLBACK_LOADER);
      expect(r).toEqual({ fat: bits, size: pe.length, pe: true });
    });
  }

  it("says what is missing: no loader, a non-PE loader, no FAT at all", () => {
    const img = fat(16, { "EFI/debian/grubx64.efi": pe, "EFI/BOOT/README": Buffer.from("hi") });
    expect(findFatFile(readerOf(img), 0, img.length, FALLBACK_LOADER)).toEqual({ problem: "\\EFI\\BOOT\\BOOTX64.EFI not found" });
    expect(findFatFile(readerOf(img), 0, img.length, ["EFI", "BOOT", "README"])).toEqual({ fat: 16, size: 2, pe: false });
    expect(findFatFile(readerOf(img), 0, img.length, ["EFI", "debian", "grubx64.efi", "x"])).toEqual({ problem: "\\EFI\\debian\\grubx64.efi is not a directory" });
    const noEfi = fat(12, { "boot/x": Buffer.from("y") });
    expect(findFatFile(readerOf(noEfi), 0, noEfi.length, FALLBACK_LOADER)).toEqual({ problem: "\\EFI not found" });
    expect(findFatFile(readerOf(Buffer.alloc(MiB)), 0, MiB, FALLBACK_LOADER)).toEqual({ problem: "no FAT boot sector" });
    expect(findFatFile(readerOf(img), 0, 4096, FALLBACK_LOADER)).toMatchObject({ problem: expect.stringContaining("larger than its partition") });
  });

  it("survives corrupt file systems: random bytes, a looping or out-of-range chain, a lying size", () => {
    for (let i = 0; i < 300; i++) {
      const b = crypto.randomBytes(64 * 1024);
      b.writeUInt16LE(0xaa55, 510);
      if (i % 2) {
        // A plausible BIOS parameter block over random directory and FAT bytes.
        b.writeUInt16LE(512, 11);
        b[13] = 1;
        b.writeUInt16LE(1, 14);
        b[16] = 2;
        b.writeUInt16LE(32, 19);
        b.writeUInt16LE(1, 22);
      }
      expect(() => findFatFile(readerOf(b), 0, b.length, FALLBACK_LOADER)).not.toThrow();
    }
    const img = fat(16, { "EFI/BOOT/BOOTX64.EFI": pe });
    const ok = findFatFile(readerOf(img), 0, img.length, FALLBACK_LOADER);
    expect(ok).toMatchObject({ pe: true });
    // Point every FAT entry at itself (a loop), then at a cluster past the volume: bounded, and reported.
    const reserved = img.readUInt16LE(14);
    const fatBytes = img.readUInt16LE(22) * 512;
    const looped = Buffer.from(img);
    for (let c = 2; c < fatBytes / 2; c++) looped.writeUInt16LE(c, reserved * 512 + c * 2);
    expect(findFatFile(readerOf(looped), 0, looped.length, FALLBACK_LOADER)).toHaveProperty("problem");
    const outside = Buffer.from(img);
    for (let c = 2; c < fatBytes / 2; c++) outside.writeUInt16LE(0xfff0, reserved * 512 + c * 2);
    expect(findFatFile(readerOf(outside), 0, outside.length, FALLBACK_LOADER)).toHaveProperty("problem");
  });
});
