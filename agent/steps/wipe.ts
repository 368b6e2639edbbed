import fs from "node:fs";
import { z } from "zod";
import { transient } from "../errors";
import { run, runOk, type LogFn } from "../exec";
import type { StepHandler } from "./context";
import { resolveTarget, targetSize } from "./disk";
import { checkImageForFirmware } from "./firmware-boot";
import { parseParams } from "./params";

const MiB = 1 << 20;
const wipeParams = z.object({
  mode: z.enum(["signatures", "discard"]).nullish(),
  target: z.string().startsWith("/").nullish(),
  targetDisk: z.string().startsWith("/").nullish(),
  /** Deploys: the image about to be written, checked against this machine's firmware before anything is wiped. */
  imageUrl: z.string().regex(/^https?:\/\/\S+$/, "must be an http(s) URL").nullish(),
  imageFormat: z.string().nullish(),
});

/** Write zeros over [offset, offset+length) of an open target, 1 MiB at a time. */
function zeroRange(fd: number, offset: number, length: number, signal: AbortSignal): void {
  const zeros = Buffer.alloc(Math.min(MiB, Math.max(length, 0)));
  for (let done = 0; done < length; ) {
    if (signal.aborted) throw transient("wipe aborted (timeout or cancel)");
    const n = Math.min(zeros.length, length - done);
    fs.writeSync(fd, zeros, 0, n, offset + done);
    done += n;
  }
}

/** Zero the first and last MiB (partition tables: MBR at the start, the GPT backup at the end; md superblocks). */
function zeroEnds(target: string, size: number, signal: AbortSignal, log: LogFn): void {
  const fd = fs.openSync(target, "r+");
  try {
    const head = Math.min(MiB, size);
    zeroRange(fd, 0, head, signal);
    const tailStart = Math.max(head, size - MiB);
    zeroRange(fd, tailStart, size - tailStart, signal);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  log(`zeroed the first and last MiB of ${target}`);
}

function zeroAll(target: string, size: number, signal: AbortSignal, log: LogFn): void {
  const fd = fs.openSync(target, "r+");
  try {
    let last = Date.now();
    for (let off = 0; off < size; off += 64 * MiB) {
      zeroRange(fd, off, Math.min(64 * MiB, size - off), signal);
      if (Date.now() - last > 2000) {
        log(`zeroing ${target}: ${Math.floor(((off + 64 * MiB) / size) * 100)}%`);
        last = Date.now();
      }
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  log(`zeroed all ${size} bytes of ${target}`);
}

/** Partition device paths below a whole disk, from lsblk. */
export async function partitionsOf(target: string, signal: AbortSignal): Promise<string[]> {
  const r = await runOk("lsblk", ["--json", "--paths", "-o", "NAME,TYPE", target], { signal });
  type Node = { name: string; type?: string; children?: Node[] };
  const walk = (n: Node): string[] => [...(n.type === "part" ? [n.name] : []), ...(n.children ?? []).flatMap(walk)];
  return ((JSON.parse(r.stdout) as { blockdevices?: Node[] }).blockdevices ?? []).flatMap(walk);
}

/** wipefs on every partition (found by lsblk), then on the disk, then zero its first and last MiB. */
export async function wipeSignatures(target: string, size: number, block: boolean, log: LogFn, signal: AbortSignal): Promise<void> {
  // Partitions first: their file systems and md superblocks survive the loss of the partition table and
  // would come back (auto-assembled arrays, stale UUIDs) once a new table puts a partition at the same offset.
  if (block) for (const part of await partitionsOf(target, signal)) await runOk("wipefs", ["--all", "--force", part], { log, signal });
  await runOk("wipefs", ["--all", "--force", target], { log, signal });
  zeroEnds(target, size, signal, log);
}

/**
 * Wipe the target disk. signatures: `wipefs --all --force` (file systems, RAID, partition tables) plus zeroing
 * the first and last MiB; discard: `blkdiscard`, or zeroing everything when the device (or file) cannot discard.
 * Idempotent: wiping a wiped disk changes nothing.
 */
export const wipe: StepHandler = async ({ params, log, signal, config }) => {
  const p = parseParams("wipe", wipeParams, params);
  const mode = p.mode ?? "signatures";
  const target = await resolveTarget(p.target ?? p.targetDisk, config.targetDisk, log, signal);
  // A deploy's image that this machine's firmware cannot boot fails here, before the disk loses anything.
  const image = p.imageUrl ? await checkImageForFirmware(p.imageUrl, p.imageFormat, config.efiDir, log, signal) : null;
  const { size, block } = targetSize(target);
  log(`wiping ${target} (${size} bytes, ${block ? "block device" : "file"}), mode ${mode}`);
  if (mode === "signatures") {
    await wipeSignatures(target, size, block, log, signal);
    return { target, mode, sizeBytes: size, ...(image && { image }) };
  }
  const discard = block ? await run("blkdiscard", ["--force", target], { log, signal }) : null;
  if (discard?.code === 0) {
    log(`discarded ${target}`);
    return { target, mode, sizeBytes: size, discarded: true, ...(image && { image }) };
  }
  log(block ? `blkdiscard failed (${discard?.stderr.trim()}); zeroing instead` : `${target} is a file: zeroing instead of discarding`);
  zeroAll(target, size, signal, log);
  return { target, mode, sizeBytes: size, discarded: false, ...(image && { image }) };
};
