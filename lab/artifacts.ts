/**
 * What a virtual machine boots: the agent RAM disk and the stand-in OS image, built once and cached by content
 * (a change to the agent bundle or the RAM disk's sources builds a new one), then linked into Rackhand's HTTP tree
 * (<dataDir>/http/ramdisk/ and <dataDir>/http/images/), which Rackhand serves under /boot/.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_PAYLOAD_FILE } from "../lib/netboot";
import { buildRamdisk, kernelDir } from "../ramdisk/builder";
import { buildDebianOsImage, type DebianNetStack, type DebianOsImage } from "../ramdisk/debian-os-image";
import { buildDebianRootfs, hostSuite } from "../ramdisk/debian-rootfs";
import { buildOsImage, type OsImage, type OsImageFirmware } from "../ramdisk/os-image";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// The RAM disk's inputs besides the agent bundle: a change to any of them invalidates the cached build.
const RAMDISK_SOURCES = ["ramdisk/builder.ts", "ramdisk/init.sh", "ramdisk/udhcpc.script", "ramdisk/modules.ts", "ramdisk/cpio.ts"];
const OS_IMAGE_SOURCES = ["ramdisk/os-image.ts", "ramdisk/modules.ts", "ramdisk/cpio.ts"];
const DEBIAN_SOURCES = ["ramdisk/debian-rootfs.ts", "ramdisk/stage2.sh"];
const DEBIAN_IMAGE_SOURCES = ["ramdisk/debian-os-image.ts", "ramdisk/debian-rootfs.ts", "ramdisk/modules.ts", "ramdisk/cpio.ts"];

function digest(files: string[], extra: string): string {
  const h = crypto.createHash("sha256").update(extra);
  // Contents only (and repository-relative names): a bundle built in a fresh temp dir hits the same cache entry.
  for (const f of files) h.update(path.isAbsolute(f) ? "" : f).update(fs.readFileSync(path.isAbsolute(f) ? f : path.join(ROOT, f)));
  return h.digest("hex").slice(0, 16);
}

/** Hard link (or copy across file systems) `src` to `dest`, replacing it atomically. */
function place(src: string, dest: string): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}`);
  fs.rmSync(tmp, { force: true });
  try {
    fs.linkSync(src, tmp);
  } catch {
    fs.copyFileSync(src, tmp);
  }
  fs.renameSync(tmp, dest);
}

const PRUNE_AFTER_MS = 2 * 24 * 3600_000;

/**
 * Remove cached builds of one kind (each RAM disk is ~40 MB) not used for two days. By age, not "all but mine":
 * another checkout sharing the cache (a second worktree, a test running beside the lab) may be using its own.
 */
function prune(cacheDir: string, prefix: string, keep: string): void {
  const now = new Date();
  fs.utimesSync(keep, now, now); // mark the one in use
  for (const e of fs.readdirSync(cacheDir)) {
    const p = path.join(cacheDir, e);
    if (e.startsWith(prefix) && p !== keep && now.getTime() - fs.statSync(p).mtimeMs > PRUNE_AFTER_MS) fs.rmSync(p, { recursive: true, force: true });
  }
}

export type LabImage = OsImage & { url: string; cached: boolean };

export interface LabArtifacts {
  ramdisk: { dir: string; cached: boolean; buildS: number };
  /** The image of `firmware` (bios when "both"). */
  image: LabImage;
  /** With firmware "both": the UEFI image too (for the UEFI and Secure Boot machines of a mixed rack). */
  uefiImage?: LabImage;
}

export interface ArtifactOptions {
  /** Rackhand's data directory (the HTTP tree is <dataDir>/http). */
  dataDir: string;
  /** Kept between runs: the kernel package, built RAM disks and images. */
  cacheDir: string;
  /** The bundled agent (dist/agent.mjs or a test's bundle). */
  agent: string;
  /**
   * The stage 1 initrd's compression (default zstd, as `npm run ramdisk`): UEFI machines fetch it through GRUB's
   * 1 KB-block TFTP, so its size counts; since the payload split it is ~35 MB raw and zstd -19 builds it in seconds.
   */
  compress?: "zstd" | "gzip";
  /** What the stand-in OS prints when it is up, and what it does next. */
  marker?: string;
  after?: "poweroff" | "shell";
  /**
   * The stand-in OS image's firmware (default bios): "uefi" is the GPT image with shim and signed GRUB on an ESP,
   * which also boots under Secure Boot. Linked as images/rackhand-os.img.gz (bios) or images/rackhand-os-uefi.img.gz.
   */
  firmware?: OsImageFirmware | "both";
  /** Also build (or reuse) the Debian agent environment's rootfs.tar.zst (needs debootstrap and the Debian mirror). */
  debian?: boolean;
  log?: (line: string) => void;
}

/** Build (or reuse) the RAM disk and the OS image and link them into the data directory's HTTP tree. */
export function prepareArtifacts(o: ArtifactOptions): LabArtifacts {
  const log = o.log ?? (() => undefined);
  const compress = o.compress ?? "zstd";
  fs.mkdirSync(o.cacheDir, { recursive: true });
  const kdir = kernelDir({ cacheDir: o.cacheDir }, log);

  const rdKey = digest([...RAMDISK_SOURCES, o.agent], `${compress} ${process.version} ${path.basename(kdir)}`);
  const rdCache = path.join(o.cacheDir, `ramdisk-${rdKey}`);
  let buildS = 0;
  const rdCached = fs.existsSync(path.join(rdCache, "manifest.json"));
  if (!rdCached) {
    const t0 = Date.now();
    buildRamdisk({ outDir: rdCache, cacheDir: o.cacheDir, kernelDir: kdir, compress, agent: o.agent, log });
    buildS = (Date.now() - t0) / 1000;
  }
  prune(o.cacheDir, "ramdisk-", rdCache);
  const rdDest = path.join(o.dataDir, "http/ramdisk");
  for (const f of ["vmlinuz", "initrd.img", AGENT_PAYLOAD_FILE, "manifest.json"]) place(path.join(rdCache, f), path.join(rdDest, f));

  if (o.debian) {
    const key = digest([...DEBIAN_SOURCES, o.agent], `${process.version} ${hostSuite()}`);
    const cache = path.join(o.cacheDir, `rootfs-${key}`);
    if (!fs.existsSync(path.join(cache, "rootfs.json"))) buildDebianRootfs({ outDir: cache, cacheDir: o.cacheDir, agent: o.agent, log });
    prune(o.cacheDir, "rootfs-", cache);
    for (const f of ["rootfs.tar.zst", "rootfs.json"]) place(path.join(cache, f), path.join(rdDest, f));
  }

  const marker = o.marker ?? "RACKHAND-OS-UP";
  const after = o.after ?? "poweroff";
  const fw = o.firmware ?? "bios";
  const ramdisk = { dir: rdDest, cached: rdCached, buildS };
  if (fw === "both") {
    return { ramdisk, image: osImage(o, kdir, marker, after, "bios"), uefiImage: osImage(o, kdir, marker, after, "uefi") };
  }
  return { ramdisk, image: osImage(o, kdir, marker, after, fw) };
}

/** The stand-in OS image of one firmware kind, built once per sources and marker, linked into the HTTP tree. */
function osImage(o: ArtifactOptions, kdir: string, marker: string, after: "poweroff" | "shell", firmware: OsImageFirmware): LabImage {
  const log = o.log ?? (() => undefined);
  const imgKey = digest(OS_IMAGE_SOURCES, `${marker} ${after} ${path.basename(kdir)}${firmware === "bios" ? "" : ` ${firmware}`}`);
  const imgCache = path.join(o.cacheDir, `os-image-${imgKey}`);
  const metaFile = path.join(imgCache, "image.json");
  const imgCached = fs.existsSync(metaFile);
  if (!imgCached) {
    fs.mkdirSync(imgCache, { recursive: true });
    const built = buildOsImage({ kernelDir: kdir, outDir: imgCache, marker, after, firmware });
    fs.writeFileSync(metaFile, JSON.stringify(built));
    log(`stand-in OS image ${built.size} bytes, sha256 ${built.sha256}`);
  }
  prune(o.cacheDir, "os-image-", imgCache);
  const img = JSON.parse(fs.readFileSync(metaFile, "utf8")) as OsImage;
  const url = firmware === "bios" ? "images/rackhand-os.img.gz" : `images/rackhand-os-${firmware}.img.gz`;
  const gzDest = path.join(o.dataDir, "http", url);
  place(img.gz, gzDest);
  return { ...img, gz: gzDest, url, cached: imgCached };
}

export type LabDebianImage = DebianOsImage & { url: string; cached: boolean };

/**
 * A real Debian with one network stack (ramdisk/debian-os-image.ts), built once per sources, stack, marker and
 * kernel, cached as debian-image-<key> in the cache directory, and linked as images/debian-<stack>.img.zst.
 */
export function debianImage(o: { dataDir: string; cacheDir: string; stack: DebianNetStack; marker: string; log?: (line: string) => void }): LabDebianImage {
  const log = o.log ?? (() => undefined);
  fs.mkdirSync(o.cacheDir, { recursive: true });
  const kdir = kernelDir({ cacheDir: o.cacheDir }, log);
  const key = digest(DEBIAN_IMAGE_SOURCES, `${o.stack} ${o.marker} ${path.basename(kdir)} ${hostSuite()}`);
  const cache = path.join(o.cacheDir, `debian-image-${key}`);
  const metaFile = path.join(cache, "image.json");
  const cached = fs.existsSync(metaFile);
  if (!cached) {
    const t0 = Date.now();
    const built = buildDebianOsImage({ kernelDir: kdir, outDir: cache, cacheDir: o.cacheDir, stack: o.stack, marker: o.marker, log });
    fs.writeFileSync(metaFile, JSON.stringify(built));
    log(`Debian ${built.suite} image (${o.stack}): ${(built.size / 2 ** 20).toFixed(0)} MiB raw, sha256 ${built.sha256}, built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  prune(o.cacheDir, "debian-image-", cache);
  const img = JSON.parse(fs.readFileSync(metaFile, "utf8")) as DebianOsImage;
  const url = `images/debian-${o.stack}.img.zst`;
  place(img.zst, path.join(o.dataDir, "http", url));
  return { ...img, url, cached };
}
