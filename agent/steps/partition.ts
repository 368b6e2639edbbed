/**
 * partition: a fresh GPT on the target disk per the profile's layout — a BIOS boot partition (BIOS firmware, for
 * grub's core image) or an EFI system partition (UEFI), optional swap, then root — file systems made and the new
 * system's root mounted at /target (its ESP at /target/boot/efi).
 */
import fs from "node:fs";
import { z } from "zod";
import { permanent } from "../errors";
import { run, runOk } from "../exec";
import type { StepHandler } from "./context";
import { resolveTarget, targetSize } from "./disk";
import { parseParams } from "./params";
import { LABELS, partitionPath, TARGET, unmountTarget, uuidOf } from "./target";

const MiB = 1 << 20;
export const layoutParams = z.object({
  espMiB: z.number().int().min(64).max(4096).default(512),
  swapMiB: z.number().int().min(0).max(262144).default(0),
  rootMiB: z.number().int().min(2048).max(64 * 1024 * 1024).nullish(),
});
const params = z.object({
  disk: z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, "a device path under /dev").refine((d) => !d.includes(".."), "must not contain ..").nullish(),
  firmware: z.enum(["bios", "uefi"]),
  layout: layoutParams,
});

export interface PlannedPartition {
  number: number;
  role: "bios" | "esp" | "swap" | "root";
  /** MiB; null = the rest of the disk. */
  sizeMiB: number | null;
  typeCode: string;
  name: string;
}

/**
 * The partitions for a layout on a disk of `diskBytes`. @throws StepFailure (permanent) when they do not fit:
 * 1 MiB alignment at the start, the backup GPT at the end, root at least 2048 MiB.
 */
export function planPartitions(firmware: "bios" | "uefi", layout: z.output<typeof layoutParams>, diskBytes: number): PlannedPartition[] {
  const parts: PlannedPartition[] = [];
  parts.push(firmware === "bios" ? { number: 1, role: "bios", sizeMiB: 1, typeCode: "EF02", name: "rh-bios" } : { number: 1, role: "esp", sizeMiB: layout.espMiB, typeCode: "EF00", name: "rh-esp" });
  if (layout.swapMiB > 0) parts.push({ number: 2, role: "swap", sizeMiB: layout.swapMiB, typeCode: "8200", name: "rh-swap" });
  parts.push({ number: parts.length + 1, role: "root", sizeMiB: layout.rootMiB ?? null, typeCode: "8300", name: "rh-root" });
  const usable = Math.floor(diskBytes / MiB) - 2; // 1 MiB before the first partition, the backup GPT after the last
  const fixed = parts.reduce((n, p) => n + (p.sizeMiB ?? 0), 0);
  const root = layout.rootMiB ?? usable - fixed;
  if (fixed + (layout.rootMiB ? 0 : 2048) > usable || root < 2048) {
    throw permanent(`partition: the layout needs ${fixed + (layout.rootMiB ? 0 : 2048)} MiB (root at least 2048 MiB) but the disk has ${usable} MiB usable`);
  }
  return parts;
}

/** sgdisk arguments creating the planned partitions (an argument array). */
export function sgdiskArgs(parts: PlannedPartition[], disk: string): string[] {
  return [...parts.flatMap((p) => ["-n", `${p.number}:0:${p.sizeMiB === null ? "0" : `+${p.sizeMiB}M`}`, "-t", `${p.number}:${p.typeCode}`, "-c", `${p.number}:${p.name}`]), disk];
}

async function waitForNodes(paths: string[], signal: AbortSignal): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (paths.every((p) => fs.existsSync(p))) return;
    if (signal.aborted) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const missing = paths.filter((p) => !fs.existsSync(p));
  if (missing.length) throw permanent(`partition: ${missing.join(", ")} did not appear after the new partition table was written`);
}

export const partition: StepHandler = async ({ params: raw, log, signal, config }) => {
  const p = parseParams("partition", params, raw);
  const disk = await resolveTarget(p.disk, config.targetDisk, log, signal);
  const { size, block } = targetSize(disk);
  if (!block) throw permanent(`partition: ${disk} is not a block device`);
  const parts = planPartitions(p.firmware, p.layout, size);
  await unmountTarget(log); // a retry: the previous attempt's file systems
  log(`partitioning ${disk} (${Math.floor(size / MiB)} MiB, ${p.firmware}): ${parts.map((x) => `${x.number} ${x.name} ${x.sizeMiB === null ? "rest" : `${x.sizeMiB} MiB`}`).join(", ")}`);
  await runOk("sgdisk", ["--zap-all", disk], { log, signal });
  await runOk("sgdisk", sgdiskArgs(parts, disk), { log, signal });
  // The kernel reads the new table (sgdisk asks too; partx makes sure when the disk was busy a moment ago).
  await run("partx", ["-u", disk], { signal });
  const dev = (role: PlannedPartition["role"]) => {
    const x = parts.find((q) => q.role === role);
    return x ? partitionPath(disk, x.number) : null;
  };
  await waitForNodes(parts.map((x) => partitionPath(disk, x.number)), signal);
  const root = dev("root")!;
  const esp = dev("esp");
  const swap = dev("swap");
  await runOk("mkfs.ext4", ["-F", "-q", "-L", LABELS.root, root], { log, signal });
  log(`ext4 on ${root} (label ${LABELS.root})`);
  if (swap) {
    await runOk("mkswap", ["-L", LABELS.swap, swap], { log, signal });
    log(`swap on ${swap} (label ${LABELS.swap})`);
  }
  if (esp) {
    await runOk("mkfs.vfat", ["-F", "32", "-n", LABELS.esp, esp], { log, signal });
    log(`FAT32 EFI system partition on ${esp} (label ${LABELS.esp})`);
  }
  fs.mkdirSync(TARGET, { recursive: true });
  await runOk("mount", [root, TARGET], { log, signal });
  if (esp) {
    fs.mkdirSync(`${TARGET}/boot/efi`, { recursive: true });
    await runOk("mount", [esp, `${TARGET}/boot/efi`], { log, signal });
  }
  log(`mounted the new root on ${TARGET}${esp ? ` and the ESP on ${TARGET}/boot/efi` : ""}`);
  return {
    disk,
    firmware: p.firmware,
    partitions: await Promise.all(parts.map(async (x) => ({ number: x.number, role: x.role, name: x.name, device: partitionPath(disk, x.number), sizeMiB: x.sizeMiB, uuid: x.role === "bios" ? null : await uuidOf(partitionPath(disk, x.number), signal) }))),
  };
};
