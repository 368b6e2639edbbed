/**
 * The Debian variant of the agent's environment: a debootstrap root file system (minbase plus the disk tools) with
 * Node.js and the agent, packed as `rootfs.tar.zst` next to the RAM disk. When the kernel command line has
 * `rackhand.rootfs=<url>` (netboot setting "agent environment: Debian"), the busybox RAM disk's /init loads the
 * drivers, takes its DHCP lease, streams this archive into a tmpfs and `switch_root`s into it; `stage2.sh` then runs
 * the agent there. What it buys over the busybox RAM disk: a whole distribution userland (glibc, apt, bash), where
 * vendor tools such as RAID controller CLIs and firmware updaters run.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { run, sharedLibraries, strippedNode, which } from "./host";

const HERE = path.dirname(new URL(import.meta.url).pathname);
/** On top of minbase: what the agent's steps call, and what an operator expects in a rescue shell. */
export const DEBIAN_PACKAGES = [
  ...["mdadm", "fdisk", "e2fsprogs", "dosfstools", "xz-utils", "zstd", "iproute2", "kmod", "pciutils", "procps", "less", "efibootmgr"],
  // Agent installs (profile kind agent_install): clear LVM, partition GPT, debootstrap (it downloads with wget).
  ...["lvm2", "gdisk", "debootstrap", "wget"],
];
/** Not needed in a RAM disk that lives for one job: documentation, translations, package lists and caches. */
const TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old"];

export interface DebianRootfsOptions {
  outDir: string;
  /** The debootstrap result is kept here per suite and package list; the stripped node binary too. */
  cacheDir: string;
  /** The bundled agent (dist/agent.mjs). */
  agent: string;
  /** Default: this host's Debian release. */
  suite?: string;
  /** Default: the mirror this host's apt uses for the suite, else deb.debian.org. */
  mirror?: string;
  log?: (line: string) => void;
}

export interface DebianRootfsManifest {
  builtAt: string;
  suite: string;
  mirror: string;
  packages: string[];
  node: string;
  unpackedBytes: number;
  file: { name: string; size: number; sha256: string };
}

/** This host's Debian codename (bookworm, trixie, …), from /etc/os-release. */
export function hostSuite(osRelease = fs.readFileSync("/etc/os-release", "utf8")): string {
  const m = /^VERSION_CODENAME=([a-z]+)$/m.exec(osRelease);
  if (!m) throw new Error("cannot tell this host's Debian release (no VERSION_CODENAME in /etc/os-release): pass --suite");
  return m[1]!;
}

/**
 * The mirror this host's apt uses for `suite` (deb822 .sources or one-line .list entries), so the build works
 * wherever apt works, e.g. behind a local mirror; null when none names the suite.
 */
export function hostMirror(suite: string, files = aptSourceFiles()): string | null {
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    if (f.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (/^\s*Enabled:\s*no/im.test(stanza) || !field("Types").includes("deb")) continue;
        if (field("Suites").includes(suite) && field("URIs")[0]) return field("URIs")[0]!;
      }
    } else {
      for (const line of text.split("\n")) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[2] === suite) return m[1]!;
      }
    }
  }
  return null;
}

function aptSourceFiles(): string[] {
  const dir = "/etc/apt/sources.list.d";
  const listed = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".sources") || f.endsWith(".list")).map((f) => path.join(dir, f)) : [];
  return [...(fs.existsSync("/etc/apt/sources.list") ? ["/etc/apt/sources.list"] : []), ...listed.sort()];
}

/** The HTTP proxy apt is configured with (Acquire::http::Proxy), handed to debootstrap, which does not read apt.conf. */
export function aptProxy(): string | null {
  try {
    return /^Acquire::http::Proxy "([^"]+)";$/m.exec(run("apt-config", ["dump"]))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** @throws Error naming what is missing (debootstrap, the agent bundle) or the step that failed */
export function buildDebianRootfs(o: DebianRootfsOptions): DebianRootfsManifest {
  const log = o.log ?? (() => undefined);
  const suite = o.suite ?? hostSuite();
  if (!/^[a-z]+$/.test(suite)) throw new Error(`--suite: a Debian codename like bookworm, not ${suite}`);
  const mirror = o.mirror ?? hostMirror(suite) ?? "http://deb.debian.org/debian";
  if (!/^https?:\/\/[A-Za-z0-9.:/_-]+$/.test(mirror)) throw new Error(`--mirror: an http(s) URL, not ${mirror}`);
  const agent = path.resolve(o.agent);
  if (!fs.existsSync(agent)) throw new Error(`agent bundle ${agent} is missing: run npm run build:agent first`);
  const debootstrap = which("debootstrap");
  if (!debootstrap) throw new Error("debootstrap is not installed (apt-get install debootstrap)");

  // The base system, once per suite + package list (debootstrap takes ~30 s and downloads ~60 MB).
  const key = crypto.createHash("sha256").update(`${suite} ${mirror} ${DEBIAN_PACKAGES.join(",")}`).digest("hex").slice(0, 16);
  const base = path.join(o.cacheDir, `debootstrap-${suite}-${key}`);
  if (!fs.existsSync(base)) {
    const tmp = `${base}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`debootstrap ${suite} from ${mirror} (minbase + ${DEBIAN_PACKAGES.join(" ")})`);
    const proxy = aptProxy();
    run(debootstrap, ["--variant=minbase", `--include=${DEBIAN_PACKAGES.join(",")}`, suite, tmp, mirror], { env: { ...process.env, ...(proxy && { http_proxy: proxy }) } });
    fs.renameSync(tmp, base);
  }

  fs.mkdirSync(o.outDir, { recursive: true });
  const stage = path.join(o.outDir, `.rootfs-${process.pid}`);
  fs.rmSync(stage, { recursive: true, force: true });
  try {
    run("cp", ["-a", base, stage]);
    for (const p of TRIM) fs.rmSync(path.join(stage, p), { recursive: true, force: true });
    // Node.js (this host's, stripped) and any library it needs that the base system lacks.
    const node = strippedNode(o.cacheDir);
    copyInto(stage, node, "usr/local/bin/node", 0o755);
    for (const lib of sharedLibraries(node)) if (!fs.existsSync(path.join(stage, lib))) copyInto(stage, fs.realpathSync(lib), lib.slice(1), 0o755);
    copyInto(stage, agent, "usr/lib/rackhand/agent.mjs", 0o644);
    copyInto(stage, path.join(HERE, "stage2.sh"), "usr/lib/rackhand/stage2", 0o755);
    fs.writeFileSync(path.join(stage, "etc/hostname"), "rackhand-agent\n");
    const unpackedBytes = Number(run("du", ["-sb", stage]).split("\t")[0]);

    // Stage 1 moves its own /dev, /proc, /sys and /run over these: the archive carries them empty.
    const tmpArchive = path.join(o.outDir, `.rootfs-${process.pid}.tar.zst`);
    const t0 = Date.now();
    run("tar", ["--zstd", "--format=gnu", "--numeric-owner", "-cf", tmpArchive, "-C", stage, "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./run/*", "."]);
    const data = fs.readFileSync(tmpArchive);
    fs.renameSync(tmpArchive, path.join(o.outDir, "rootfs.tar.zst"));
    const manifest: DebianRootfsManifest = {
      builtAt: new Date().toISOString(),
      suite,
      mirror,
      packages: DEBIAN_PACKAGES,
      node: process.version,
      unpackedBytes,
      file: { name: "rootfs.tar.zst", size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex") },
    };
    fs.writeFileSync(path.join(o.outDir, ".rootfs.json.tmp"), JSON.stringify(manifest, null, 2) + "\n");
    fs.renameSync(path.join(o.outDir, ".rootfs.json.tmp"), path.join(o.outDir, "rootfs.json"));
    log(`Debian ${suite} root file system: ${(unpackedBytes / 1e6).toFixed(0)} MB unpacked → rootfs.tar.zst ${(data.length / 1e6).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return manifest;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function copyInto(root: string, from: string, rel: string, mode: number): void {
  const to = path.join(root, rel);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  fs.chmodSync(to, mode);
}
