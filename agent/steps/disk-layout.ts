/**
 * What firmware can boot a disk image, read from its bytes without mounting anything: the partition table (MBR or
 * GPT, from the first MiB) and, in an EFI System Partition, whether the UEFI fallback loader \EFI\BOOT\BOOTX64.EFI
 * is there (an own FAT12/16/32 reader: the RAM disk has no mtools, and the kernel's vfat need not be loaded).
 * Every offset read from the image is checked against the buffer or the partition before use: an image is input
 * from the network, and a corrupt or hostile one must give a clear "not bootable", never a crash or a hang.
 */

/** GPT partition type GUIDs (upper case, the usual text form). */
export const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
export const BIOS_BOOT_TYPE = "21686148-6449-6E6F-744E-656564454649";
/** The path UEFI firmware boots from a disk without an NVRAM entry (removable-media / fallback path, x86-64). */
export const FALLBACK_LOADER = ["EFI", "BOOT", "BOOTX64.EFI"] as const;
export const FALLBACK_LOADER_PATH = "\\EFI\\BOOT\\BOOTX64.EFI";

export interface Partition {
  /** 1-based, as Linux numbers partitions (/dev/sda1). */
  number: number;
  /** Byte offset and length on the disk. */
  start: number;
  size: number;
  /** GPT type GUID, or the MBR type byte as "0xEF". */
  type: string;
  esp: boolean;
  biosBoot: boolean;
  /** MBR active flag, or GPT attribute bit 2 (legacy BIOS bootable). */
  legacyBootable: boolean;
}

export interface PartitionTable {
  scheme: "gpt" | "mbr" | "none";
  sectorSize: number;
  partitions: Partition[];
  /** Non-zero code in the MBR's first 440 bytes: something a BIOS can run. */
  bootCode: boolean;
  /** Why the table could not be read, when scheme is none. */
  problem?: string;
}

function guid(b: Buffer, off: number): string {
  const hex = (s: number, e: number) => b.subarray(off + s, off + e).toString("hex");
  const le = (s: number, e: number) => Buffer.from(b.subarray(off + s, off + e)).reverse().toString("hex");
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`.toUpperCase();
}

const MAX_GPT_ENTRIES = 1024;

/** The partition table in the first bytes of a disk (at least the first MiB for GPT's entries). */
export function readPartitionTable(head: Buffer): PartitionTable {
  const none = (problem: string): PartitionTable => ({ scheme: "none", sectorSize: 512, partitions: [], bootCode: false, problem });
  if (head.length < 512) return none(`only ${head.length} bytes`);
  const bootCode = head.subarray(0, 440).some((x) => x !== 0);
  if (head.readUInt16LE(510) !== 0xaa55) return { ...none("no MBR signature (0x55AA at byte 510): no partition table"), bootCode };
  const mbr = [0, 1, 2, 3].map((i) => {
    const o = 446 + i * 16;
    return { status: head[o]!, type: head[o + 4]!, lba: head.readUInt32LE(o + 8), sectors: head.readUInt32LE(o + 12) };
  });
  if (mbr.some((e) => e.type === 0xee)) {
    for (const ss of [512, 4096]) {
      if (head.length < ss + 92 || head.toString("latin1", ss, ss + 8) !== "EFI PART") continue;
      const entriesLba = head.readBigUInt64LE(ss + 72);
      const count = head.readUInt32LE(ss + 80);
      const size = head.readUInt32LE(ss + 84);
      if (size < 128 || size > 4096 || size % 8 !== 0) return { ...none(`GPT entry size ${size} is invalid`), bootCode };
      if (count > MAX_GPT_ENTRIES) return { ...none(`GPT claims ${count} entries (at most ${MAX_GPT_ENTRIES})`), bootCode };
      const first = Number(entriesLba) * ss;
      if (entriesLba < 2n || first + count * size > head.length) {
        return { ...none(`GPT partition entries (LBA ${entriesLba}, ${count} × ${size} bytes) lie outside the first ${head.length} bytes`), bootCode };
      }
      const partitions: Partition[] = [];
      for (let i = 0; i < count; i++) {
        const o = first + i * size;
        const type = guid(head, o);
        if (type === "00000000-0000-0000-0000-000000000000") continue;
        const startLba = head.readBigUInt64LE(o + 32);
        const endLba = head.readBigUInt64LE(o + 40);
        if (endLba < startLba) continue;
        const attrs = head.readBigUInt64LE(o + 48);
        partitions.push({
          number: i + 1,
          start: Number(startLba) * ss,
          size: Number(endLba - startLba + 1n) * ss,
          type,
          esp: type === ESP_TYPE,
          biosBoot: type === BIOS_BOOT_TYPE,
          legacyBootable: (attrs & 4n) !== 0n,
        });
      }
      return { scheme: "gpt", sectorSize: ss, partitions, bootCode };
    }
    return { ...none("protective MBR without a GPT header"), bootCode };
  }
  const partitions = mbr.flatMap((e, i): Partition[] =>
    e.type === 0 || e.sectors === 0
      ? []
      : [{ number: i + 1, start: e.lba * 512, size: e.sectors * 512, type: `0x${e.type.toString(16).toUpperCase().padStart(2, "0")}`, esp: e.type === 0xef, biosBoot: false, legacyBootable: e.status === 0x80 }],
  );
  return { scheme: "mbr", sectorSize: 512, partitions, bootCode };
}

export interface Bootability {
  uefi: boolean;
  bios: boolean;
  /** One line for the job log, e.g. "GPT, 2 partitions, EFI System Partition #1 (24 MiB), no BIOS boot code". */
  summary: string;
}

const mib = (n: number) => `${Math.round(n / (1 << 20))} MiB`;

/**
 * Which firmware the partition table lets boot the disk. UEFI: an EFI System Partition (GPT type, or MBR type
 * 0xEF). BIOS: boot code in the MBR, on an MBR disk or on GPT with a BIOS boot partition (GRUB's core) or a partition
 * flagged legacy-BIOS-bootable (syslinux's gptmbr). Whether the ESP holds a loader is checked after the write.
 */
export function bootability(t: PartitionTable): Bootability {
  const esp = t.partitions.find((p) => p.esp);
  const uefi = !!esp;
  const bios = t.bootCode && (t.scheme === "mbr" || t.partitions.some((p) => p.biosBoot || p.legacyBootable));
  if (t.scheme === "none") return { uefi: false, bios: false, summary: `no partition table (${t.problem})` };
  const parts = [
    `${t.scheme.toUpperCase()}, ${t.partitions.length} partition${t.partitions.length === 1 ? "" : "s"}`,
    esp ? `EFI System Partition #${esp.number} (${mib(esp.size)})` : "no EFI System Partition",
    t.partitions.some((p) => p.biosBoot) ? "a BIOS boot partition" : null,
    t.bootCode ? "BIOS boot code in the MBR" : "no BIOS boot code",
  ];
  return { uefi, bios, summary: parts.filter(Boolean).join(", ") };
}

/** Reads `length` bytes at absolute byte `offset` of the disk (may return fewer at its end). */
export type ReadAt = (offset: number, length: number) => Buffer;

export interface FatFile {
  fat: 12 | 16 | 32;
  size: number;
  /** The file starts with "MZ": a PE/COFF image, as EFI applications are. */
  pe: boolean;
}

const MAX_FAT_BYTES = 64 << 20;

/**
 * Find a file by its path of 8.3 names (compared without case, as FAT does) in the FAT file system at `partStart`
 * (`partSize` bytes). Long file names are not needed: EFI, BOOT and BOOTX64.EFI are valid short names, which every
 * FAT writer stores. @returns the file, or a reason it is not there (not FAT, a missing component, a bad chain)
 */
export function findFatFile(read: ReadAt, partStart: number, partSize: number, names: readonly string[]): FatFile | { problem: string } {
  const bs = read(partStart, 512);
  if (bs.length < 512 || bs.readUInt16LE(510) !== 0xaa55) return { problem: "no FAT boot sector" };
  const bps = bs.readUInt16LE(11);
  const spc = bs[13]!;
  const reserved = bs.readUInt16LE(14);
  const nfats = bs[16]!;
  const rootEntries = bs.readUInt16LE(17);
  const fatSectors = bs.readUInt16LE(22) || bs.readUInt32LE(36);
  const totalSectors = bs.readUInt16LE(19) || bs.readUInt32LE(32);
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (![512, 1024, 2048, 4096].includes(bps) || !pow2(spc) || reserved < 1 || nfats < 1 || nfats > 4 || fatSectors < 1 || totalSectors < 1) {
    return { problem: "not a FAT file system (invalid BIOS parameter block)" };
  }
  if (totalSectors * bps > partSize) return { problem: `the FAT file system (${totalSectors * bps} bytes) is larger than its partition (${partSize})` };
  const rootDirSectors = Math.ceil((rootEntries * 32) / bps);
  const firstData = reserved + nfats * fatSectors + rootDirSectors;
  if (firstData >= totalSectors) return { problem: "not a FAT file system (no data area)" };
  const clusters = Math.floor((totalSectors - firstData) / spc);
  const fat: 12 | 16 | 32 = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
  const clusterBytes = spc * bps;
  const fatBytes = fatSectors * bps;
  if (fatBytes > MAX_FAT_BYTES) return { problem: `FAT of ${fatBytes} bytes is too large` };
  const table = read(partStart + reserved * bps, fatBytes);
  const next = (c: number): number => {
    if (fat === 12) {
      const o = c + (c >> 1);
      if (o + 1 >= table.length) return -1;
      const v = table.readUInt16LE(o);
      return c & 1 ? v >> 4 : v & 0xfff;
    }
    if (fat === 16) return c * 2 + 1 < table.length ? table.readUInt16LE(c * 2) : -1;
    return c * 4 + 3 < table.length ? table.readUInt32LE(c * 4) & 0x0fffffff : -1;
  };
  const eoc = fat === 12 ? 0xff8 : fat === 16 ? 0xfff8 : 0x0ffffff8;
  /** The clusters of a chain, at most `max` of them; null when it leaves the volume or loops. */
  const chain = (first: number, max: number): number[] | null => {
    const out: number[] = [];
    const seen = new Set<number>();
    for (let c = first; c < eoc; c = next(c)) {
      if (c < 2 || c >= clusters + 2 || seen.has(c)) return null;
      seen.add(c);
      out.push(c);
      if (out.length >= max) break;
    }
    return out;
  };
  const clusterAt = (c: number) => read(partStart + (firstData + (c - 2) * spc) * bps, clusterBytes);
  const MAX_DIR_CLUSTERS = 256;

  let dir: Buffer;
  if (fat === 32) {
    const c = chain(bs.readUInt32LE(44), MAX_DIR_CLUSTERS);
    if (!c) return { problem: "FAT32 root directory chain is broken" };
    dir = Buffer.concat(c.map(clusterAt));
  } else {
    dir = read(partStart + (reserved + nfats * fatSectors) * bps, rootEntries * 32);
  }
  const shortName = (e: Buffer) => {
    const base = e.toString("latin1", 0, 8).trimEnd();
    const ext = e.toString("latin1", 8, 11).trimEnd();
    return (ext ? `${base}.${ext}` : base).toUpperCase();
  };
  for (let depth = 0; depth < names.length; depth++) {
    const want = names[depth]!.toUpperCase();
    const last = depth === names.length - 1;
    let found: Buffer | null = null;
    for (let o = 0; o + 32 <= dir.length; o += 32) {
      const e = dir.subarray(o, o + 32);
      if (e[0] === 0) break;
      if (e[0] === 0xe5 || (e[11]! & 0x0f) === 0x0f || e[11]! & 0x08) continue; // deleted, long-name part, volume label
      if (shortName(e) === want) {
        found = e;
        break;
      }
    }
    const where = `\\${names.slice(0, depth + 1).join("\\")}`;
    if (!found) return { problem: `${where} not found` };
    const isDir = (found[11]! & 0x10) !== 0;
    const first = (fat === 32 ? found.readUInt16LE(20) << 16 : 0) | found.readUInt16LE(26);
    if (!last) {
      if (!isDir) return { problem: `${where} is not a directory` };
      const c = chain(first, MAX_DIR_CLUSTERS);
      if (!c || !c.length) return { problem: `${where}: broken cluster chain` };
      dir = Buffer.concat(c.map(clusterAt));
      continue;
    }
    if (isDir) return { problem: `${where} is a directory` };
    const size = found.readUInt32LE(28);
    if (size === 0) return { problem: `${where} is empty` };
    const c = chain(first, Math.ceil(size / clusterBytes));
    if (!c || c.length < Math.ceil(size / clusterBytes)) return { problem: `${where}: its cluster chain is shorter than its size (${size} bytes)` };
    const head = clusterAt(c[0]!);
    return { fat, size, pe: head.length >= 2 && head[0] === 0x4d && head[1] === 0x5a };
  }
  return { problem: "empty path" };
}
