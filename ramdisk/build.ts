/**
 * npm run ramdisk — build the agent RAM disk: a Debian kernel and an initramfs of busybox, Node.js, the disk tools
 * the agent's steps use, the kernel modules for virtio and md RAID, and the bundled agent.
 * Output: <dataDir>/http/ramdisk/{vmlinuz, initrd.img, manifest.json}, served at /boot/ramdisk/... and booted by
 * the netboot tree's agent entries. Options: --out DIR, --cache DIR, --compress zstd|gzip|xz, --kernel-dir DIR
 * (an extracted linux-image .deb), --agent FILE.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { cpioChunks, type CpioEntry } from "./cpio";
import { currentKernelPackage, extractDeb, run, sharedLibraries, which } from "./host";
import { builtinModules, indexModules, loadOrder } from "./modules";

const HERE = path.dirname(new URL(import.meta.url).pathname);
// NICs and disks of common servers and of QEMU, md RAID, and the file systems configure_network mounts.
const MODULES = [
  ...["virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "e1000", "e1000e", "igb", "ixgbe", "ahci", "nvme", "sd_mod"],
  ...["md_mod", "raid0", "raid1", "raid10", "ext4", "vfat", "nls_cp437", "nls_iso8859_1"],
];
const TOOLS = ["wipefs", "lsblk", "sfdisk", "blkdiscard", "blkid", "xz", "zstd", "mdadm"];

const { values: opt } = parseArgs({
  options: {
    out: { type: "string" },
    cache: { type: "string" },
    compress: { type: "string", default: "zstd" },
    "kernel-dir": { type: "string" },
    agent: { type: "string", default: "dist/agent.mjs" },
  },
});
const dataDir = path.resolve(process.env.RACKHAND_DATA_DIR ?? "data");
const outDir = path.resolve(opt.out ?? path.join(dataDir, "http/ramdisk"));
const cacheDir = path.resolve(opt.cache ?? path.join(dataDir, "cache/ramdisk"));
const log = (s: string) => console.log(`[ramdisk] ${s}`);

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
  /** An ELF program and every shared library it needs, at the same paths as on this host. */
  elf(hostPath: string, at: string) {
    this.file(at, fs.readFileSync(hostPath), 0o755);
    for (const lib of sharedLibraries(hostPath)) if (!this.entries.has(lib.slice(1))) this.file(lib, fs.readFileSync(fs.realpathSync(lib)), 0o755);
  }
}

function kernelDir(): string {
  if (opt["kernel-dir"]) return path.resolve(opt["kernel-dir"]);
  const pkg = currentKernelPackage();
  log(`kernel package ${pkg}`);
  return extractDeb(pkg, cacheDir);
}

function toolPath(name: string): string {
  const found = which(name);
  if (found) return found;
  if (name === "mdadm") return path.join(extractDeb("mdadm", cacheDir), "sbin/mdadm"); // its package pulls in udev: take the binary only
  throw new Error(`${name} is not installed (scripts/install-system-deps.sh ramdisk installs it)`);
}

function main() {
  const agent = path.resolve(opt.agent!);
  if (!fs.existsSync(agent)) throw new Error(`agent bundle ${agent} is missing: run npm run build:agent first`);
  const kdir = kernelDir();
  const vmlinuz = fs.readdirSync(path.join(kdir, "boot")).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`no boot/vmlinuz-* in ${kdir}`);
  const kver = vmlinuz.slice("vmlinuz-".length);
  const modRoot = path.join(kdir, "lib/modules", kver);

  const t = new Tree();
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "mnt"]) t.dir(d);
  const busybox = which("busybox") ?? "/bin/busybox";
  t.file("bin/busybox", fs.readFileSync(busybox), 0o755);
  for (const applet of run(busybox, ["--list"]).split("\n").filter((a) => a && a !== "busybox")) {
    if (!t.entries.has(`bin/${applet}`)) t.symlink(`bin/${applet}`, "busybox");
  }
  const strippedNode = path.join(cacheDir, "node.stripped");
  fs.mkdirSync(cacheDir, { recursive: true });
  run("strip", ["-o", strippedNode, process.execPath]);
  t.elf(strippedNode, "usr/bin/node");
  for (const tool of TOOLS) t.elf(toolPath(tool), `usr/sbin/${tool}`);

  const index = indexModules(path.join(modRoot, "kernel"));
  const builtinFile = path.join(modRoot, "modules.builtin");
  const builtin = builtinModules(fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, "utf8") : "");
  const order = loadOrder(MODULES.filter((m) => index.has(m) || builtin.has(m)), index, builtin);
  const rels = order.map((m) => path.relative(modRoot, index.get(m)!));
  for (const rel of rels) t.file(`lib/modules/${kver}/${rel}`, fs.readFileSync(path.join(modRoot, rel)));
  t.file("etc/modules.load", Buffer.from(rels.join("\n") + "\n"));

  t.file("init", fs.readFileSync(path.join(HERE, "init.sh")), 0o755);
  t.file("etc/udhcpc.script", fs.readFileSync(path.join(HERE, "udhcpc.script")), 0o755);
  t.file("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\n"));
  t.file("etc/group", Buffer.from("root:x:0:\n"));
  t.file("etc/nsswitch.conf", Buffer.from("hosts: files dns\n"));
  t.file("usr/lib/rackhand/agent.mjs", fs.readFileSync(agent));

  // cpio → compressed initrd, written next to the old one and renamed into place (the tree may be serving it).
  fs.mkdirSync(outDir, { recursive: true });
  const cpioFile = path.join(outDir, `.initrd-${process.pid}.cpio`);
  const fd = fs.openSync(cpioFile, "w");
  let raw = 0;
  for (const chunk of cpioChunks([...t.entries.values()].sort((a, b) => a.name.localeCompare(b.name)))) {
    fs.writeSync(fd, chunk);
    raw += chunk.length;
  }
  fs.closeSync(fd);
  const packed = `${cpioFile}.${opt.compress}`;
  const t0 = Date.now();
  if (opt.compress === "zstd") run("zstd", ["-q", "-19", "-T0", "-f", cpioFile, "-o", packed]);
  else if (opt.compress === "xz") run("xz", ["-T1", "-6", "--check=crc32", "-k", "-f", cpioFile]); // the kernel's xz needs crc32
  else if (opt.compress === "gzip") run("gzip", ["-9", "-n", "-k", "-f", cpioFile]);
  else throw new Error(`--compress: zstd, xz or gzip, not ${opt.compress}`);
  const producedBy = { zstd: packed, xz: `${cpioFile}.xz`, gzip: `${cpioFile}.gz` }[opt.compress as "zstd" | "xz" | "gzip"];
  fs.rmSync(cpioFile);
  const vmTmp = path.join(outDir, `.vmlinuz-${process.pid}`);
  fs.copyFileSync(path.join(kdir, "boot", vmlinuz), vmTmp);
  fs.renameSync(producedBy, path.join(outDir, "initrd.img"));
  fs.renameSync(vmTmp, path.join(outDir, "vmlinuz"));

  const files = ["vmlinuz", "initrd.img"].map((name) => {
    const data = fs.readFileSync(path.join(outDir, name));
    return { name, size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex") };
  });
  const manifest = { builtAt: new Date().toISOString(), kernel: kver, compression: opt.compress, cpioBytes: raw, node: process.version, modules: order, files };
  fs.writeFileSync(path.join(outDir, ".manifest.tmp"), JSON.stringify(manifest, null, 2) + "\n");
  fs.renameSync(path.join(outDir, ".manifest.tmp"), path.join(outDir, "manifest.json"));
  log(`kernel ${kver}, ${t.entries.size} entries, cpio ${(raw / 1e6).toFixed(1)} MB → ${opt.compress} ${(files[1]!.size / 1e6).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  log(`wrote ${outDir}/{vmlinuz,initrd.img,manifest.json}`);
}

try {
  main();
} catch (err) {
  console.error(`[ramdisk] ${(err as Error).message}`);
  process.exit(1);
}
