/**
 * Making a written image boot on this machine's firmware. Before anything is written (the deploy's wipe step):
 * the image's partition table, read from the first MiB of its download, must suit the firmware the RAM disk was
 * booted with (/sys/firmware/efi exists only under UEFI). After the write (write_image): under UEFI, the disk's
 * EFI System Partition must hold the fallback loader \EFI\BOOT\BOOTX64.EFI, and an NVRAM boot entry for it is
 * created (or refreshed) with efibootmgr, so the firmware boots the disk even where it does not try the fallback
 * path. Every decision goes to the job log.
 */
import fs from "node:fs";
import { permanent, transient } from "../errors";
import { run, type LogFn } from "../exec";
import { bootability, FALLBACK_LOADER, FALLBACK_LOADER_PATH, findFatFile, readPartitionTable, type ReadAt } from "./disk-layout";
import { decompress, httpGet, imageFormat, redactUrl } from "./image-source";

const MiB = 1 << 20;
/** The NVRAM entry's label: an existing entry with it is replaced, so redeploys do not pile entries up. */
export const BOOT_ENTRY_LABEL = "Rackhand deployed OS";

export type Firmware = "uefi" | "bios";

/** The firmware this machine booted the RAM disk with. */
export function machineFirmware(efiDir: string): Firmware {
  return fs.existsSync(efiDir) ? "uefi" : "bios";
}

/** The first `bytes` of the image, decompressed (the download is dropped after them). @throws StepFailure */
export async function imageHead(url: string, format: string | null | undefined, signal: AbortSignal, bytes = MiB): Promise<Buffer> {
  const res = await httpGet(url, signal);
  const dec = decompress(imageFormat(format, url), res, signal);
  dec.done.catch(() => undefined); // stopped early on purpose: the decompressor's exit status says nothing
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of dec.output as AsyncIterable<Buffer>) {
      chunks.push(c);
      got += c.length;
      if (got >= bytes) break;
    }
  } catch (e) {
    if (signal.aborted) throw transient("image check aborted (timeout or cancel)");
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw code.startsWith("Z_") ? permanent(`the image is not valid gzip: ${(e as Error).message}`) : e;
  } finally {
    res.destroy();
    dec.output.destroy();
  }
  return Buffer.concat(chunks).subarray(0, bytes);
}

/**
 * Refuse an image this machine's firmware cannot boot, before anything is written. @throws StepFailure (permanent)
 * naming the firmware and what the image lacks
 */
export async function checkImageForFirmware(url: string, format: string | null | undefined, efiDir: string, log: LogFn, signal: AbortSignal) {
  const firmware = machineFirmware(efiDir);
  const b = bootability(readPartitionTable(await imageHead(url, format, signal)));
  const image = `the image ${redactUrl(url)}`;
  if (firmware === "uefi" && !b.uefi) {
    throw permanent(`${image} cannot boot on this machine: it booted with UEFI firmware and the image has no EFI System Partition (${b.summary}); nothing was written`);
  }
  if (firmware === "bios" && !b.bios) {
    throw permanent(`${image} cannot boot on this machine: it booted with legacy BIOS firmware and the image has no BIOS boot code (${b.summary}); nothing was written`);
  }
  log(`image check: ${b.summary}; this machine booted with ${firmware === "uefi" ? "UEFI" : "BIOS"} firmware: the image can boot on it`);
  return { firmware, imageUefi: b.uefi, imageBios: b.bios };
}

function readerOf(fd: number): ReadAt {
  return (offset, length) => {
    const buf = Buffer.alloc(length);
    const n = fs.readSync(fd, buf, 0, length, offset);
    return buf.subarray(0, n);
  };
}

/** The ESP on the written disk and its fallback loader. @throws StepFailure (permanent) when either is missing */
export function checkEsp(target: string): { partition: number; fat: number; loaderBytes: number } {
  const fd = fs.openSync(target, "r");
  try {
    const read = readerOf(fd);
    const table = readPartitionTable(read(0, MiB));
    const esp = table.partitions.find((p) => p.esp);
    if (!esp) throw permanent(`${target} has no EFI System Partition (${bootability(table).summary}): this UEFI machine cannot boot it`);
    const f = findFatFile(read, esp.start, esp.size, FALLBACK_LOADER);
    if ("problem" in f) throw permanent(`the EFI System Partition (#${esp.number}) of ${target} has no loader at ${FALLBACK_LOADER_PATH}: ${f.problem}`);
    if (!f.pe) throw permanent(`${FALLBACK_LOADER_PATH} on ${target} (partition ${esp.number}) is not an EFI executable (no MZ header)`);
    return { partition: esp.number, fat: f.fat, loaderBytes: f.size };
  } finally {
    fs.closeSync(fd);
  }
}

/** efibootmgr reads and writes EFI variables through efivarfs (a module in Debian's kernel; works under lockdown). */
async function mountEfivarfs(efiDir: string, signal: AbortSignal): Promise<void> {
  const vars = `${efiDir}/efivars`;
  const mounted = () => fs.readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === vars);
  if (mounted()) return;
  await run("modprobe", ["efivarfs"], { signal }).catch(() => undefined);
  const r = await run("mount", ["-t", "efivarfs", "efivarfs", vars], { signal });
  if (r.code !== 0 && !mounted()) throw new Error(`mount -t efivarfs: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/** Boot entries from `efibootmgr` output: "Boot0003* Label<TAB>device path". */
export function parseBootEntries(out: string): { num: string; label: string }[] {
  const entries: { num: string; label: string }[] = [];
  for (const line of out.split("\n")) {
    const m = /^Boot([0-9A-Fa-f]{4})\*?\s+([^\t]*)/.exec(line);
    if (m) entries.push({ num: m[1]!.toUpperCase(), label: m[2]!.trim() });
  }
  return entries;
}

export interface FirmwareBootResult {
  firmware: Firmware;
  esp?: { partition: number; fat: number; loader: string; loaderBytes: number };
  /** What happened to the NVRAM boot entry: created BootXXXX, or why none was made. */
  nvram: string;
}

/**
 * After the write: under UEFI check the ESP and its fallback loader (a missing one fails the step: the machine
 * would not boot), then create the NVRAM entry where that makes sense (a real disk, not a file or an md array).
 * An efibootmgr failure is logged and not fatal: the fallback path still boots the disk.
 */
export async function prepareFirmwareBoot(target: string, block: boolean, efiDir: string, log: LogFn, signal: AbortSignal): Promise<FirmwareBootResult> {
  const firmware = machineFirmware(efiDir);
  if (firmware === "bios") {
    log(`firmware: no ${efiDir}: this machine boots with legacy BIOS; no EFI System Partition check, no NVRAM boot entry`);
    return { firmware, nvram: "none: BIOS" };
  }
  const e = checkEsp(target);
  const esp = { ...e, loader: FALLBACK_LOADER_PATH };
  log(`ESP check: partition ${e.partition} of ${target} (FAT${e.fat}) holds ${FALLBACK_LOADER_PATH} (${e.loaderBytes} bytes, an EFI executable): UEFI can boot it by the fallback path`);
  if (!block) {
    log(`efibootmgr: skipped: ${target} is a file, not a disk`);
    return { firmware, esp, nvram: "skipped: target is a file" };
  }
  if (/^\/dev\/md/.test(target)) {
    log(`efibootmgr: skipped: ${target} is a software RAID array; the firmware boots its members by the fallback path`);
    return { firmware, esp, nvram: "skipped: software RAID" };
  }
  try {
    await mountEfivarfs(efiDir, signal);
    const list = await run("efibootmgr", [], { signal });
    if (list.code !== 0) throw new Error(list.stderr.trim() || `exit ${list.code}`);
    for (const old of parseBootEntries(list.stdout).filter((x) => x.label === BOOT_ENTRY_LABEL)) {
      const r = await run("efibootmgr", ["--bootnum", old.num, "--delete-bootnum"], { signal });
      log(r.code === 0 ? `efibootmgr: removed the previous entry Boot${old.num} "${BOOT_ENTRY_LABEL}"` : `efibootmgr: could not remove Boot${old.num}: ${r.stderr.trim()}`, r.code === 0 ? "stdout" : "stderr");
    }
    const args = ["--create", "--disk", target, "--part", String(e.partition), "--label", BOOT_ENTRY_LABEL, "--loader", FALLBACK_LOADER_PATH];
    const r = await run("efibootmgr", args, { signal });
    if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    const created = parseBootEntries(r.stdout).find((x) => x.label === BOOT_ENTRY_LABEL);
    const order = /^BootOrder:\s*(\S+)/m.exec(r.stdout)?.[1] ?? "?";
    const entry = created ? `Boot${created.num}` : "an entry";
    log(`efibootmgr: created ${entry} "${BOOT_ENTRY_LABEL}" → ${target} partition ${e.partition} ${FALLBACK_LOADER_PATH}; BootOrder ${order}`);
    return { firmware, esp, nvram: `created ${entry}` };
  } catch (err) {
    if (signal.aborted) throw transient("efibootmgr aborted (timeout or cancel)");
    const why = err instanceof Error ? err.message : String(err);
    log(`efibootmgr: could not create the boot entry (${why}); the firmware can still boot the disk by ${FALLBACK_LOADER_PATH}`, "stderr");
    return { firmware, esp, nvram: `failed: ${why}` };
  }
}
