import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { currentKernelPackage, extractDeb } from "./host";
import { buildOsImage } from "./os-image";

// The Debian kernel is downloaded once per machine (apt-get download) and kept between runs, in the cache the
// lab and the VM tests share.
const cache = path.join(os.tmpdir(), "rackhand-lab-cache");
const out = fs.mkdtempSync(path.join(os.tmpdir(), "rh-osimg-"));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));


/** Boot a disk image in QEMU (TCG) and resolve with the serial output once the line with `marker` is complete. */
function bootUntil(image: string, marker: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const qemu = spawn(
      "qemu-system-x86_64",
      ["-machine", "q35", "-m", "256", "-nographic", "-no-reboot", "-nic", "none", "-drive", `file=${image},format=raw,if=virtio`, "-boot", "c"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
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
    const console = await bootUntil(img.raw, "RACKHAND-OS-UP", 60_000);
    // host= comes from the root file system's /etc/hostname: the root partition was found and mounted.
    expect(console).toMatch(/RACKHAND-OS-UP uptime=\d+\.\d+ host=rackhand-os net=none/);
  }, 240_000);
});
