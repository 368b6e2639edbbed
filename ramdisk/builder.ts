/**
 * The agent RAM disk builder: a Debian kernel and an initramfs of busybox, Node.js, the disk tools the agent's
 * steps use, the kernel modules for virtio, md RAID and the file systems configure_network mounts, and the bundled
 * agent. Writes {vmlinuz, initrd.img, agent.cpio.zst, manifest.json} into `outDir` (each renamed into place): the
 * initrd is stage 1 (busybox, zstd, modules, firmware, /init) and agent.cpio.zst the payload /init fetches after
 * its DHCP lease (Node.js, the disk tools, the agent). Used by
 * `npm run ramdisk` (ramdisk/build.ts), the virtual lab and the VM tests.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AGENT_PAYLOAD_FILE } from "../lib/netboot";
import { cpioChunks, type CpioEntry } from "./cpio";
import { currentKernelPackage, extractDeb, run, sharedLibraries, strippedNode, which } from "./host";
import { firmwareFiles, kernelModules, modprobeIndex } from "./modules";

const HERE = path.dirname(new URL(import.meta.url).pathname);
/**
 * Loaded at every boot, in order: virtual machines' devices, md RAID and the file systems the agent mounts. vfat
 * with its code pages and character sets: Debian's kernel mounts FAT with codepage 437 and iocharset "ascii"
 * (nls_ascii) by default, util-linux's mount in the Debian environment asks for nothing else, and without the
 * module an ESP cannot be mounted there (an agent install on UEFI failed so: "missing codepage or helper program").
 */
const ALWAYS_MODULES = [
  ...["virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod"],
  ...["md_mod", "raid0", "raid1", "raid10", "ext4", "crc32c_generic", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8"],
  // LVM on a used disk (agent installs deactivate and remove its volume groups).
  "dm_mod",
];
/** Loaded by /init only on UEFI machines: efivarfs, the EFI variables efibootmgr edits (write_image's boot entry). */
const UEFI_MODULES = ["efivarfs"];
/**
 * Drivers of common servers' NICs and storage controllers, loaded only for the hardware present (/init runs
 * modprobe with the PCI devices' modaliases; `modprobeIndex` writes modules.dep and modules.alias). Drivers that
 * need firmware files (bnx2x, some tg3 and qede chips) get the ones they declare from `firmwareDir` when it has
 * them (Debian ships them in non-free-firmware: install e.g. firmware-bnx2x on the build host).
 */
const HARDWARE_MODULES = [
  // Intel, Broadcom, Mellanox/NVIDIA, Emulex, QLogic, Realtek, Cisco, Solarflare, VMware NICs.
  ...["e1000", "e1000e", "igb", "igc", "ixgbe", "ixgbevf", "i40e", "iavf", "ice", "tg3", "bnx2", "bnx2x", "bnxt_en"],
  ...["mlx4_en", "mlx5_core", "be2net", "qede", "r8169", "enic", "sfc", "vmxnet3"],
  // SATA/AHCI, NVMe, LSI/Broadcom MegaRAID and SAS HBAs, HPE Smart Array, Adaptec, Intel SCU, VMware PVSCSI.
  ...["ahci", "ata_piix", "nvme", "megaraid_sas", "mpt3sas", "hpsa", "smartpqi", "aacraid", "isci", "vmw_pvscsi"],
];
const TOOLS = ["wipefs", "lsblk", "sfdisk", "blkdiscard", "blkid", "xz", "zstd", "mdadm", "efibootmgr"];

export interface RamdiskOptions {
  outDir: string;
  /** Downloaded kernel package and the stripped node binary are kept here between builds. */
  cacheDir: string;
  compress?: "zstd" | "gzip" | "xz";
  /** An extracted linux-image .deb; default: this Debian release's kernel package, downloaded into the cache. */
  kernelDir?: string;
  /** The bundled agent (dist/agent.mjs). */
  agent: string;
  /** Where the firmware the drivers declare is taken from; default /lib/firmware (the manifest lists what was missing). */
  firmwareDir?: string;
  log?: (line: string) => void;
}

export interface RamdiskManifest {
  builtAt: string;
  kernel: string;
  compression: string;
  cpioBytes: number;
  /** The payload's uncompressed cpio size (PAYLOAD_FILE, zstd). */
  payloadCpioBytes: number;
  node: string;
  modules: string[];
  /** Firmware files included (under /lib/firmware), and those the drivers declare that the build host lacked. */
  firmware: { included: string[]; missing: string[]; refused: string[] };
  files: { name: string; size: number; sha256: string }[];
}

class Tree {
  readonly entries = new Map<string, CpioEntry>();
  dir(p: string) {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!this.entries.has(d)) this.entries.set(d, { name: d, kind: "dir", mode: d === "tmp" ? 0o1777 : 0o755 });
    }
  }
  file(p: string, data: Buffer, mode = 0o644) {
    const name = p.replace(/^\/+/, "");
    this.dir(path.posix.dirname(name));
    this.entries.set(name, { name, kind: "file", mode, data });
  }
  symlink(p: string, target: string) {
    const name = p.replace(/^\/+/, "");
    this.dir(path.posix.dirname(name));
    this.entries.set(name, { name, kind: "symlink", mode: 0o777, data: Buffer.from(target) });
  }
  /** An ELF program and every shared library it needs (but those `base` already has), at the same paths as on this host. */
  elf(hostPath: string, at: string, base?: Tree) {
    this.file(at, fs.readFileSync(hostPath), 0o755);
    for (const lib of sharedLibraries(hostPath)) {
      if (!this.entries.has(lib.slice(1)) && !base?.entries.has(lib.slice(1))) this.file(lib, fs.readFileSync(fs.realpathSync(lib)), 0o755);
    }
  }
  /** The entries sorted by name, as cpio wants them (directories before their contents). */
  sorted(): CpioEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** Writes `entries` as a cpio archive to `file` (a temporary name next to the output); returns its size. */
function writeCpio(file: string, entries: CpioEntry[]): number {
  const fd = fs.openSync(file, "w");
  let raw = 0;
  for (const chunk of cpioChunks(entries)) {
    fs.writeSync(fd, chunk);
    raw += chunk.length;
  }
  fs.closeSync(fd);
  return raw;
}

/** The RAM disk's payload (Node.js, the disk tools, the agent), fetched over HTTP by /init. */
export const PAYLOAD_FILE = AGENT_PAYLOAD_FILE;

/** The extracted kernel package: `kernelDir` when given, else this release's linux-image, downloaded into the cache. */
export function kernelDir(o: { kernelDir?: string; cacheDir: string }, log: (s: string) => void = () => undefined): string {
  if (o.kernelDir) return path.resolve(o.kernelDir);
  const pkg = currentKernelPackage();
  log(`kernel package ${pkg}`);
  return extractDeb(pkg, o.cacheDir);
}

function toolPath(name: string, cacheDir: string): string {
  const found = which(name);
  if (found) return found;
  if (name === "mdadm") return path.join(extractDeb("mdadm", cacheDir), "sbin/mdadm"); // its package pulls in udev: take the binary only
  throw new Error(`${name} is not installed (scripts/install-system-deps.sh ramdisk installs it)`);
}

/** @throws Error naming what is missing (agent bundle, a tool, the kernel package) or the step that failed */
export function buildRamdisk(o: RamdiskOptions): RamdiskManifest {
  const log = o.log ?? (() => undefined);
  const compress = o.compress ?? "zstd";
  const { outDir, cacheDir } = o;
  const agent = path.resolve(o.agent);
  if (!fs.existsSync(agent)) throw new Error(`agent bundle ${agent} is missing: run npm run build:agent first`);
  const kdir = kernelDir(o, log);
  const always = kernelModules(kdir, ALWAYS_MODULES);
  const kset = kernelModules(kdir, [...ALWAYS_MODULES, ...HARDWARE_MODULES, ...UEFI_MODULES]);
  const kver = kset.version;
  const t = new Tree();
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "mnt"]) t.dir(d);
  const busybox = which("busybox") ?? "/bin/busybox";
  t.file("bin/busybox", fs.readFileSync(busybox), 0o755);
  for (const applet of run(busybox, ["--list"]).split("\n").filter((a) => a && a !== "busybox")) {
    if (!t.entries.has(`bin/${applet}`)) t.symlink(`bin/${applet}`, "busybox");
  }
  // Stage 1 (the initrd the boot loader fetches) keeps what /init needs up to its DHCP lease and the payload's
  // download: busybox, zstd, the modules and firmware. Everything else is the payload (`p`), a zstd cpio that /init
  // fetches over HTTP from Linux's own network stack and checks against the sha256 on the kernel command line.
  // A boot loader's transfer is the slow part of a netboot (Debian's signed GRUB reads files by TFTP in 1 KB
  // lockstep blocks), so the initrd it fetches is kept small.
  const p = new Tree();
  t.elf(toolPath("zstd", cacheDir), "usr/sbin/zstd");
  p.elf(strippedNode(cacheDir), "usr/bin/node", t);
  for (const tool of TOOLS.filter((x) => x !== "zstd")) p.elf(toolPath(tool, cacheDir), `usr/sbin/${tool}`, t);

  // Each module file is read once: copied, and read for its firmware and for the modprobe index.
  const ko = new Map(kset.modules.map((m) => [m.file, fs.readFileSync(m.file)]));
  const readKo = (file: string) => ko.get(file) ?? fs.readFileSync(file);
  for (const m of kset.modules) t.file(`lib/modules/${kver}/${m.rel}`, ko.get(m.file)!);
  t.file("etc/modules.load", Buffer.from(always.modules.map((m) => m.rel).join("\n") + "\n"));
  const fw = firmwareFiles(kset.modules, o.firmwareDir ?? "/lib/firmware", readKo);
  for (const f of fw.found) t.file(`lib/firmware/${f.rel}`, fs.readFileSync(f.file));
  log(`firmware: ${fw.found.length} of ${fw.found.length + fw.missing.length} files the drivers declare (from ${o.firmwareDir ?? "/lib/firmware"})`);
  const index = modprobeIndex(kset.modules, readKo);
  t.file(`lib/modules/${kver}/modules.dep`, Buffer.from(index.dep));
  t.file(`lib/modules/${kver}/modules.alias`, Buffer.from(index.alias));

  t.file("init", fs.readFileSync(path.join(HERE, "init.sh")), 0o755);
  t.file("etc/udhcpc.script", fs.readFileSync(path.join(HERE, "udhcpc.script")), 0o755);
  t.file("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\n"));
  t.file("etc/group", Buffer.from("root:x:0:\n"));
  t.file("etc/nsswitch.conf", Buffer.from("hosts: files dns\n"));
  p.file("usr/lib/rackhand/agent.mjs", fs.readFileSync(agent));

  // cpio → compressed initrd, written next to the old one and renamed into place (the tree may be serving it).
  fs.mkdirSync(outDir, { recursive: true });
  const cpioFile = path.join(outDir, `.initrd-${process.pid}.cpio`);
  const raw = writeCpio(cpioFile, t.sorted());
  const payloadCpio = path.join(outDir, `.payload-${process.pid}.cpio`);
  const payloadRaw = writeCpio(payloadCpio, p.sorted());
  const packed = `${cpioFile}.${compress}`;
  const t0 = Date.now();
  if (compress === "zstd") run("zstd", ["-q", "-19", "-T0", "-f", cpioFile, "-o", packed]);
  else if (compress === "xz") run("xz", ["-T1", "-6", "--check=crc32", "-k", "-f", cpioFile]); // the kernel's xz needs crc32
  else if (compress === "gzip") run("gzip", ["-9", "-n", "-k", "-f", cpioFile]);
  else throw new Error(`--compress: zstd, xz or gzip, not ${String(compress)}`);
  const producedBy = { zstd: packed, xz: `${cpioFile}.xz`, gzip: `${cpioFile}.gz` }[compress];
  fs.rmSync(cpioFile);
  // The payload travels over HTTP from Linux (fast), so its size matters less than the initrd's: level 12 builds
  // in a fraction of 19's time; decompression speed hardly depends on the level.
  const payloadTmp = `${payloadCpio}.zst`;
  run("zstd", ["-q", "-12", "-T0", "-f", payloadCpio, "-o", payloadTmp]);
  fs.rmSync(payloadCpio);
  fs.renameSync(payloadTmp, path.join(outDir, PAYLOAD_FILE));
  const vmTmp = path.join(outDir, `.vmlinuz-${process.pid}`);
  fs.copyFileSync(kset.vmlinuz, vmTmp);
  fs.renameSync(producedBy, path.join(outDir, "initrd.img"));
  fs.renameSync(vmTmp, path.join(outDir, "vmlinuz"));

  const files = ["vmlinuz", "initrd.img", PAYLOAD_FILE].map((name) => {
    const data = fs.readFileSync(path.join(outDir, name));
    return { name, size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex") };
  });
  const manifest: RamdiskManifest = { builtAt: new Date().toISOString(), kernel: kver, compression: compress, cpioBytes: raw, payloadCpioBytes: payloadRaw, node: process.version, modules: kset.modules.map((m) => path.basename(m.rel, ".ko")), firmware: { included: fw.found.map((f) => f.rel), missing: fw.missing, refused: fw.refused }, files };
  fs.writeFileSync(path.join(outDir, ".manifest.tmp"), JSON.stringify(manifest, null, 2) + "\n");
  fs.renameSync(path.join(outDir, ".manifest.tmp"), path.join(outDir, "manifest.json"));
  log(`kernel ${kver}, initrd ${t.entries.size} entries, cpio ${(raw / 1e6).toFixed(1)} MB → ${compress} ${(files[1]!.size / 1e6).toFixed(1)} MB; payload ${p.entries.size} entries, cpio ${(payloadRaw / 1e6).toFixed(1)} MB → zstd ${(files[2]!.size / 1e6).toFixed(1)} MB; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  log(`wrote ${outDir}/{vmlinuz,initrd.img,${PAYLOAD_FILE},manifest.json}`);
  return manifest;
}
