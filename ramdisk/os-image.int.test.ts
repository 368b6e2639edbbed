import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { currentKernelPackage, extractDeb } from "./host";
import { bootability, FALLBACK_LOADER, findFatFile, readPartitionTable } from "../agent/steps/disk-layout";
import { checkEsp } from "../agent/steps/firmware-boot";
import { buildOsImage } from "./os-image";

// The Debian kernel is downloaded once per machine (apt-get download) and kept between runs, in the cache the
// lab and the VM tests share.
const cache = path.join(os.tmpdir(), "rackhand-lab-cache");
const out = fs.mkdtempSync(path.join(os.tmpdir(), "rh-osimg-"));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));


const OVMF = "/usr/share/OVMF";
/** q35 with OVMF's Secure Boot firmware and Microsoft's keys enrolled (a writable copy of the vars). */
function secureBootArgs(): string[] {
  for (const f of ["OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"]) {
    if (!fs.existsSync(path.join(OVMF, f))) throw new Error(`${OVMF}/${f} is required (apt-get install ovmf)`);
  }
  const vars = path.join(out, "vars.fd");
  fs.copyFileSync(path.join(OVMF, "OVMF_VARS_4M.ms.fd"), vars);
  return [
    ...["-machine", "q35,smm=on,accel=tcg", "-global", "driver=cfi.pflash01,property=secure,value=on", "-global", "ICH9-LPC.disable_s3=1"],
    ...["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF}/OVMF_CODE_4M.secboot.fd`, "-drive", `if=pflash,format=raw,unit=1,file=${vars}`],
    // Signed GRUB needs more than 256 MiB to place the kernel ("cannot allocate kernel buffer").
    ...["-m", "512", "-nodefaults", "-display", "none", "-serial", "stdio"],
  ];
}

/** Boot a disk image in QEMU (TCG) and resolve with the serial output once the line with `marker` is complete. */
function bootUntil(image: string, marker: string, timeoutMs: number, firmware: "bios" | "secureboot" = "bios"): Promise<string> {
  return new Promise((resolve, reject) => {
    const machine = firmware === "bios" ? ["-machine", "q35", "-m", "256", "-nographic", "-boot", "c"] : secureBootArgs();
    const qemu = spawn("qemu-system-x86_64", [...machine, "-no-reboot", "-nic", "none", "-drive", `file=${image},format=raw,if=virtio`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    const timer = setTimeout(() => {
      qemu.kill("SIGKILL");
      reject(new Error(`no ${marker} within ${timeoutMs} ms; console:\n${text.slice(-2000)}`));
    }, timeoutMs);
    qemu.stdout.on("data", (b) => {
      text += b;
      if (new RegExp(`${marker}[^\n]*\n`).test(text)) {
        clearTimeout(timer);
        qemu.kill("SIGKILL");
        resolve(text);
      }
    });
    qemu.on("error", (e) => (clearTimeout(timer), reject(new Error(`qemu-system-x86_64 (Debian qemu-system-x86) is needed: ${e.message}`))));
  });
}

describe("the stand-in OS disk image", () => {
  it("is BIOS-bootable: QEMU boots it from disk, its initramfs mounts the ext4 root and prints the marker", async () => {
    const img = buildOsImage({ kernelDir: extractDeb(currentKernelPackage(), cache), outDir: out, marker: "RACKHAND-OS-UP", sizeMiB: 40 });
    expect(img.size).toBe(40 * 1024 * 1024);
    expect(img.rootPartition).toBe(2);
    expect(img.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.statSync(img.gz).size).toBeLessThan(img.size);
    const console = await bootUntil(img.raw, "RACKHAND-OS-UP", 240_000);
    // host= comes from the root file system's /etc/hostname: the root partition was found and mounted.
    expect(console).toMatch(/RACKHAND-OS-UP uptime=\d+\.\d+ host=rackhand-os net=none/);
    expect(img.firmware).toBe("bios");
    // What the agent's firmware check reads from it: MBR with boot code, no ESP — BIOS only.
    const b = bootability(readPartitionTable(fs.readFileSync(img.raw).subarray(0, 1 << 20)));
    expect(b).toEqual({ uefi: false, bios: true, summary: "MBR, 2 partitions, no EFI System Partition, BIOS boot code in the MBR" });
    expect(() => checkEsp(img.raw)).toThrow(/has no EFI System Partition \(MBR, 2 partitions/);
  }, 400_000);

  it("the UEFI variant boots under Secure Boot (OVMF, Microsoft keys): shim → Debian's signed GRUB → signed kernel → the marker", async () => {
    const img = buildOsImage({ kernelDir: extractDeb(currentKernelPackage(), cache), outDir: out, marker: "RACKHAND-OS-UP", firmware: "uefi", name: "uefi.img" });
    expect(img).toMatchObject({ firmware: "uefi", rootPartition: 2, size: 48 * 1024 * 1024 });
    // No BIOS boot code: the first 440 bytes (the protective MBR's code area) are zero.
    const raw = fs.readFileSync(img.raw);
    expect(raw.subarray(0, 440).every((b) => b === 0)).toBe(true);
    // What the agent's firmware check reads from it: GPT with the ESP first — UEFI only — and shim at the fallback path.
    const table = readPartitionTable(raw.subarray(0, 1 << 20));
    expect(bootability(table)).toEqual({ uefi: true, bios: false, summary: "GPT, 2 partitions, EFI System Partition #1 (24 MiB), no BIOS boot code" });
    const esp = table.partitions[0]!;
    const read = (off: number, len: number) => raw.subarray(off, off + len);
    expect(findFatFile(read, esp.start, esp.size, FALLBACK_LOADER)).toEqual({ fat: 16, size: fs.statSync("/usr/lib/shim/shimx64.efi.signed").size, pe: true });
    expect(findFatFile(read, esp.start, esp.size, ["EFI", "BOOT", "grubx64.efi"])).toMatchObject({ pe: true });
    expect(findFatFile(read, esp.start, esp.size, ["EFI", "debian", "grub.cfg"])).toMatchObject({ pe: false });
    expect(checkEsp(img.raw)).toEqual({ partition: 1, fat: 16, loaderBytes: fs.statSync("/usr/lib/shim/shimx64.efi.signed").size });
    const console = await bootUntil(img.raw, "os-firmware:", 300_000, "secureboot");
    expect(console).toContain("Welcome to GRUB!");
    expect(console).toMatch(/RACKHAND-OS-UP uptime=\d+\.\d+ host=rackhand-os net=none/);
    // The installed system itself read SecureBoot=1 from the firmware's variables.
    expect(console).toMatch(/os-firmware: efi=yes secureboot=1/);
  }, 500_000);
});
