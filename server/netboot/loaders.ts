/**
 * Boot loaders placed in the TFTP root by the netboot reconciler, straight from Debian's packages
 * (scripts/install-system-deps.sh installs them): nobody copies a loader by hand. Each file is copied
 * atomically (dot-named temp file + rename, like the rest of the tree) and only when its bytes changed.
 * The HTTP side serves the TFTP root too (/boot/<name>, server/http/boot.ts), so one copy serves both.
 *
 * Provenance (package, version from dpkg, sha256) is kept for the Settings page and netboot.status.
 * A loader whose source is missing is an error there and in the log, and dnsmasq.conf then gives the
 * clients that would need it no boot file at all (dhcpBootLines) instead of a name that does not exist.
 */
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { placeFileAtomically } from "./atomic-file";

export type LoaderName =
  | "lpxelinux.0"
  | "pxelinux.0"
  | "ldlinux.c32"
  | "undionly.kpxe"
  | "ipxe.efi"
  | "snponly.efi"
  | "shimx64.efi"
  | "grubx64.efi";

export interface LoaderSpec {
  /** Name in the TFTP root. */
  name: LoaderName;
  /** Debian package that ships it (what to apt-get install when it is missing). */
  package: string;
  /** Absolute source path in that package. */
  source: string;
  purpose: string;
}

export const LOADERS: readonly LoaderSpec[] = [
  { name: "lpxelinux.0", package: "pxelinux", source: "/usr/lib/PXELINUX/lpxelinux.0", purpose: "BIOS PXE (fetches http:// kernels)" },
  { name: "pxelinux.0", package: "pxelinux", source: "/usr/lib/PXELINUX/pxelinux.0", purpose: "BIOS PXE (TFTP only)" },
  { name: "ldlinux.c32", package: "syslinux-common", source: "/usr/lib/syslinux/modules/bios/ldlinux.c32", purpose: "pxelinux core module" },
  { name: "undionly.kpxe", package: "ipxe", source: "/usr/lib/ipxe/undionly.kpxe", purpose: "iPXE for BIOS PXE ROMs" },
  { name: "ipxe.efi", package: "ipxe", source: "/usr/lib/ipxe/ipxe.efi", purpose: "iPXE for UEFI (own drivers; unsigned)" },
  { name: "snponly.efi", package: "ipxe", source: "/usr/lib/ipxe/snponly.efi", purpose: "iPXE for UEFI (firmware NIC driver; unsigned), UEFI HTTP Boot" },
  { name: "shimx64.efi", package: "shim-signed", source: "/usr/lib/shim/shimx64.efi.signed", purpose: "UEFI PXE, Secure Boot first stage (Microsoft-signed)" },
  {
    name: "grubx64.efi",
    package: "grub-efi-amd64-signed",
    source: "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
    purpose: "UEFI second stage loaded by shim from the TFTP root (Debian-signed network GRUB)",
  },
];

export interface LoaderStatus {
  name: LoaderName;
  purpose: string;
  /** Package that owns the source file per dpkg (or the expected one when missing). */
  package: string;
  version: string | null;
  sha256: string | null;
  size: number | null;
  source: string;
  /** Null when the file is in place. */
  error: string | null;
}

export interface LoaderOptions {
  /** Replace a source path (tests point loaders at files of their own). */
  resolveSource?: (spec: LoaderSpec) => string;
  /** Package owner and version of a file; default asks dpkg. */
  provenance?: (file: string, expectedPackage: string) => { package: string; version: string | null };
}

interface Installed {
  key: string;
  /** size/mtime/inode of the copy in the TFTP root when it was last checked: any change to it is seen. */
  destKey: string;
  status: LoaderStatus;
}

function statKey(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.size}\0${st.mtimeMs}\0${st.ino}`;
  } catch {
    return "";
  }
}

export class LoaderInstaller {
  private readonly cache = new Map<LoaderName, Installed>();

  constructor(
    readonly tftpRoot: string,
    private readonly o: LoaderOptions = {},
  ) {}

  /**
   * Make every loader in the TFTP root equal to its package file. Never throws for a missing source (it
   * becomes the loader's error); throws only when the TFTP root itself cannot be written.
   */
  install(): LoaderStatus[] {
    fs.mkdirSync(this.tftpRoot, { recursive: true });
    return LOADERS.map((spec) => this.installOne(spec));
  }

  /** Last known status without touching the disk. */
  status(): LoaderStatus[] {
    return LOADERS.map((s) => this.cache.get(s.name)?.status ?? missing(s, s.source, "not installed yet"));
  }

  /** dpkg's answers by source key (path, size, mtime, inode) and package: a changed file is asked again. */
  private readonly dpkgCache = new Map<string, { package: string; version: string | null }>();

  /**
   * dpkg provenance of one loader. On a miss every loader source is asked at once (two dpkg-query runs instead of
   * two per loader: the first reconcile of a fleet paid ~16 process starts for this).
   */
  private dpkgProvenanceOf(real: string, pkg: string, key: string): { package: string; version: string | null } {
    const hit = this.dpkgCache.get(`${key}\0${pkg}`);
    if (hit) return hit;
    const items: { file: string; pkg: string; key: string }[] = [{ file: real, pkg, key }];
    for (const spec of LOADERS) {
      try {
        const file = fs.realpathSync(this.o.resolveSource?.(spec) ?? spec.source);
        const st = fs.statSync(file);
        if (file !== real) items.push({ file, pkg: spec.package, key: `${file}\0${st.size}\0${st.mtimeMs}\0${st.ino}` });
      } catch {
        /* missing: not asked */
      }
    }
    const answers = dpkgProvenanceAll(items);
    items.forEach((it, i) => this.dpkgCache.set(`${it.key}\0${it.pkg}`, answers[i]!));
    return answers[0]!;
  }

  private installOne(spec: LoaderSpec): LoaderStatus {
    const src = this.o.resolveSource?.(spec) ?? spec.source;
    const dest = path.join(this.tftpRoot, spec.name);
    let real: string;
    let st: fs.Stats;
    try {
      real = fs.realpathSync(src);
      st = fs.statSync(real);
      if (!st.isFile()) throw new Error("not a file");
    } catch {
      // Never leave an older copy behind that the status would not account for.
      fs.rmSync(dest, { force: true });
      const s = missing(spec, src, `${src} not found: install the Debian package ${spec.package} (scripts/install-system-deps.sh)`);
      this.cache.set(spec.name, { key: "", destKey: "", status: s });
      return s;
    }
    const key = `${real}\0${st.size}\0${st.mtimeMs}\0${st.ino}`;
    const prev = this.cache.get(spec.name);
    if (prev && prev.key === key && prev.status.sha256 && prev.destKey && statKey(dest) === prev.destKey) return prev.status;
    const data = fs.readFileSync(real);
    const sha256 = crypto.createHash("sha256").update(data).digest("hex");
    let onDisk: Buffer | null = null;
    try {
      onDisk = fs.readFileSync(dest);
    } catch {
      /* absent */
    }
    if (!onDisk || !onDisk.equals(data)) placeFileAtomically(dest, (tmp) => fs.writeFileSync(tmp, data, { mode: 0o644 }));
    const prov = this.o.provenance ? this.o.provenance(real, spec.package) : this.dpkgProvenanceOf(real, spec.package, key);
    const status: LoaderStatus = { name: spec.name, purpose: spec.purpose, package: prov.package, version: prov.version, sha256, size: data.length, source: src, error: null };
    this.cache.set(spec.name, { key, destKey: statKey(dest), status });
    return status;
  }
}

function missing(spec: LoaderSpec, src: string, error: string): LoaderStatus {
  return { name: spec.name, purpose: spec.purpose, package: spec.package, version: null, sha256: null, size: null, source: src, error };
}

/**
 * dpkgProvenance() for many files in two dpkg-query runs: `-S` with every path, then `-W` with every owner.
 * A file dpkg does not know keeps its expected package.
 */
export function dpkgProvenanceAll(items: { file: string; pkg: string }[]): { package: string; version: string | null }[] {
  const q = (args: string[]) => spawnSync("dpkg-query", args, { encoding: "utf8", timeout: 10_000 });
  const owners = new Map<string, string>();
  // Lines "pkg[:arch][, other]: /path"; unknown paths only make stderr lines and a non-zero status.
  for (const line of q(["-S", ...new Set(items.map((i) => i.file))]).stdout?.split("\n") ?? []) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?(?:, [^:]+)?: (\/.*)$/.exec(line.trim());
    if (m && !owners.has(m[2]!)) owners.set(m[2]!, m[1]!);
  }
  const pkgs = items.map((i) => owners.get(i.file) ?? i.pkg);
  const versions = new Map<string, string>();
  for (const line of q(["-W", "-f=${Package}\t${Version}\n", ...new Set(pkgs)]).stdout?.split("\n") ?? []) {
    const [p, v] = line.split("\t");
    if (p && v?.trim()) versions.set(p.split(":")[0]!, v.trim());
  }
  return pkgs.map((p) => ({ package: p, version: versions.get(p) ?? null }));
}

/** `dpkg-query -S` for the owner (the path as given, then its real path), `-W` for the version. */
export function dpkgProvenance(file: string, expectedPackage: string): { package: string; version: string | null } {
  const q = (args: string[]) => spawnSync("dpkg-query", args, { encoding: "utf8", timeout: 10_000 });
  let pkg = expectedPackage;
  const owner = q(["-S", file]);
  if (owner.status === 0) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?[,:]/.exec(owner.stdout.trim());
    if (m) pkg = m[1]!;
  }
  const v = q(["-W", "-f=${Version}", pkg]);
  return { package: pkg, version: v.status === 0 && v.stdout.trim() ? v.stdout.trim() : null };
}

/**
 * dnsmasq's boot-file rules, per client architecture (DHCP option 93) and iPXE's user class:
 *   iPXE (either firmware)          → <base>/boot/boot.ipxe over HTTP (chains the per-MAC script), so a UEFI
 *                                     HTTP Boot client never needs TFTP; over TFTP when the URL cannot be given
 *   BIOS, arch 0                    → lpxelinux.0
 *   UEFI x86-64 PXE, arch 7 and 9   → shimx64.efi, which loads grubx64.efi from the TFTP root (works with and
 *                                     without Secure Boot); GRUB reads <tftp-root>/grub/grub.cfg
 *   UEFI HTTP Boot, arch 16         → an http:// URL of snponly.efi (iPXE) with vendor class HTTPClient:
 *                                     Debian's signed GRUB has no http module, so this path is without Secure Boot
 * A rule whose loader is missing is left out (with a comment): such a client gets no boot file rather than
 * a name that does not exist.
 */
export function dhcpBootLines(serverAddress: string, httpBaseUrl: string, available: ReadonlySet<string> | null): string[] {
  const has = (n: LoaderName) => available === null || available.has(n);
  const base = httpBaseUrl.replace(/\/+$/, "");
  // dnsmasq splits dhcp-boot at commas: such a URL cannot be given as a boot file.
  const urlOk = !/[,#\s]/.test(base);
  const out = [
    `# Client architecture (option 93): 0 BIOS, 7/9 UEFI x86-64 PXE, 16 UEFI x86-64 HTTP Boot; iPXE sends user class iPXE / option 175.`,
    `dhcp-match=set:ipxe,175`,
    `dhcp-userclass=set:ipxe,iPXE`,
    `dhcp-match=set:efi64,option:client-arch,7`,
    `dhcp-match=set:efi64,option:client-arch,9`,
    `dhcp-match=set:efihttp,option:client-arch,16`,
    `# arch* tags name the architecture in dnsmasq's log; Rackhand learns each machine's firmware from them.`,
    `dhcp-match=set:arch0,option:client-arch,0`,
    `dhcp-match=set:arch7,option:client-arch,7`,
    `dhcp-match=set:arch9,option:client-arch,9`,
    `# iPXE "no-pxedhcp": do not wait ~3 s for ProxyDHCP offers.`,
    `dhcp-option=tag:ipxe,encap:175,176,1b`,
    urlOk ? `dhcp-boot=tag:ipxe,${base}/boot/boot.ipxe` : `dhcp-boot=tag:ipxe,boot.ipxe,,${serverAddress}`,
  ];
  const rule = (loaders: LoaderName[], what: string, line: string) => {
    const gone = loaders.filter((l) => !has(l));
    if (!gone.length) out.push(line);
    else out.push(`# ${what}: no boot file, ${gone.join(" and ")} missing from the TFTP root (see the Settings page)`);
  };
  rule(["shimx64.efi", "grubx64.efi"], "UEFI PXE", `dhcp-boot=tag:!ipxe,tag:efi64,shimx64.efi,,${serverAddress}`);
  if (!urlOk) {
    out.push(`# UEFI HTTP Boot: no boot file, the HTTP base URL contains a comma, # or space`);
  } else if (has("snponly.efi")) {
    out.push(`dhcp-option-force=tag:efihttp,60,HTTPClient`, `dhcp-boot=tag:!ipxe,tag:efihttp,${base}/boot/snponly.efi`);
  } else {
    rule(["snponly.efi"], "UEFI HTTP Boot", "");
  }
  rule(["lpxelinux.0", "ldlinux.c32"], "BIOS PXE", `dhcp-boot=tag:!ipxe,tag:!efi64,tag:!efihttp,lpxelinux.0,,${serverAddress}`);
  return out;
}
