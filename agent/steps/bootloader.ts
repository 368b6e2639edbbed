/**
 * bootloader: grub-install for the machine's firmware (BIOS: into the disk's BIOS boot partition; UEFI: onto the ESP,
 * signed through shim, also at the removable-media path so firmware without a boot entry finds it) and update-grub
 * in the target; then everything is synced and unmounted for the reboot into the installed system.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { permanent } from "../errors";
import type { StepHandler } from "./context";
import { resolveTarget } from "./disk";
import { parseParams } from "./params";
import { chrootOk, ensureTargetMounted, TARGET, unmountTarget, withChroot } from "./target";

const params = z.object({
  disk: z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, "a device path under /dev").refine((d) => !d.includes(".."), "must not contain ..").nullish(),
  firmware: z.enum(["bios", "uefi"]),
});

/** grub-install's arguments for a firmware. */
export function grubInstallArgs(firmware: "bios" | "uefi", disk: string): string[] {
  return firmware === "bios"
    ? ["--target=i386-pc", "--recheck", disk]
    : ["--target=x86_64-efi", "--efi-directory=/boot/efi", "--bootloader-id=debian", "--uefi-secure-boot", "--force-extra-removable", "--no-nvram"];
}

export const bootloader: StepHandler = async ({ params: raw, log, signal, config }) => {
  const p = parseParams("bootloader", params, raw);
  log("phase: boot loader", "phase");
  const disk = await resolveTarget(p.disk, config.targetDisk, log, signal);
  await ensureTargetMounted(log, signal);
  if (!fs.readdirSync(path.join(TARGET, "boot")).some((f) => f.startsWith("vmlinuz-"))) throw permanent("bootloader: no kernel in /target/boot: the debootstrap step has not run");
  await withChroot(log, signal, async (chroot) => {
    log(`grub-install ${grubInstallArgs(p.firmware, disk).join(" ")}`);
    await chrootOk(chroot, "grub-install", grubInstallArgs(p.firmware, disk));
    await chrootOk(chroot, "update-grub", []);
  });
  const cfg = fs.readFileSync(path.join(TARGET, "boot/grub/grub.cfg"), "utf8");
  const entries = [...cfg.matchAll(/^menuentry '([^']+)'/gm)].map((m) => m[1]!);
  const linux = /^\s*linux\s+(\S+)\s+(.*)$/m.exec(cfg);
  log(`grub.cfg: ${entries.length} entries; first boots ${linux?.[1] ?? "?"} ${linux?.[2] ?? ""}`);
  if (!linux) throw permanent("bootloader: update-grub wrote no linux entry");
  await unmountTarget(log);
  log("phase: finish", "phase");
  return { disk, firmware: p.firmware, entries, cmdline: linux[2] ?? "" };
};
