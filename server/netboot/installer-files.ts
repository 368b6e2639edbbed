/**
 * Installer files managed by Rackhand (issue 17 point 1): the netboot installer Debian ships as a package
 * (`debian-installer-12-netboot-amd64`, installed by scripts/install-system-deps.sh) is copied into the HTTP
 * tree at start-up, and a "Debian 12 (installer)" OS profile pointing at it is seeded once.
 *
 * One kernel + initrd serves every boot path: BIOS (lpxelinux.0), UEFI (GRUB's http module) and iPXE all
 * fetch them over HTTP from <dataDir>/http/installers/<id>/ (render-boot.ts), so nobody copies files by hand.
 * Files are hard-linked, or copied across file systems (not symlinked: /boot refuses links that leave the
 * tree), through a temp name + rename,
 * and only when the package version changed or a file is missing or of another size.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { osProfileCreateSchema } from "../../lib/netboot";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { placeFileAtomically } from "./atomic-file";

export interface InstallerRelease {
  /** Directory below <dataDir>/http/installers/ (also the kernel path prefix of the seeded profile). */
  id: string;
  /** Debian package that ships the files. */
  pkg: string;
  /** Where the package puts kernel and initrd. */
  sourceDir: string;
  /** Its version.info (the "Installer build:" line), a fallback when dpkg cannot be asked. */
  versionInfo: string;
  files: readonly string[];
  profileName: string;
}

export const DEBIAN_12_AMD64: InstallerRelease = {
  id: "debian-12-amd64",
  pkg: "debian-installer-12-netboot-amd64",
  sourceDir: "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64",
  versionInfo: "/usr/lib/debian-installer/images/12/amd64/text/version.info",
  files: ["linux", "initrd.gz"],
  profileName: "Debian 12 (installer)",
};

export const INSTALLER_RELEASES: readonly InstallerRelease[] = [DEBIAN_12_AMD64];

export interface InstallerFilesStatus {
  id: string;
  pkg: string;
  profileName: string;
  /** Package version (dpkg), or the installer build from version.info; null when the package is not installed. */
  version: string | null;
  /** Kernel and initrd are in the HTTP tree (and match the package). */
  placed: boolean;
  /** Paths below /boot/ the profile uses. */
  kernel: string;
  initrd: string;
  error: string | null;
}

const VERSION_FILE = "VERSION";

/** The installed package's version, or null. */
export function packageVersion(rel: InstallerRelease, dpkgQuery = "dpkg-query"): string | null {
  try {
    const out = execFileSync(dpkgQuery, ["-W", "-f=${Status}\t${Version}", rel.pkg], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const [status, version] = out.split("\t");
    if (status?.endsWith("installed") && !status.includes("not-installed") && version) return version.trim();
  } catch {
    /* not installed, or no dpkg: fall back to version.info */
  }
  try {
    const m = /^Installer build:\s*(\S+)/m.exec(fs.readFileSync(rel.versionInfo, "utf8"));
    if (m && rel.files.every((f) => fs.existsSync(path.join(rel.sourceDir, f)))) return m[1]!;
  } catch {
    /* absent */
  }
  return null;
}

/**
 * Copy the release's files into <httpRoot>/installers/<id>/ when they are missing or stale. Never throws:
 * a missing package or a failed copy is reported in the status (the Settings page shows it).
 */
export function syncInstallerFiles(httpRoot: string, rel: InstallerRelease = DEBIAN_12_AMD64, version: string | null = packageVersion(rel)): InstallerFilesStatus {
  const dest = path.join(httpRoot, "installers", rel.id);
  const status: InstallerFilesStatus = {
    id: rel.id,
    pkg: rel.pkg,
    profileName: rel.profileName,
    version,
    placed: false,
    kernel: `installers/${rel.id}/${rel.files[0]}`,
    initrd: `installers/${rel.id}/${rel.files[1]}`,
    error: null,
  };
  if (!version) {
    status.error = `${rel.pkg} is not installed (scripts/install-system-deps.sh installs it)`;
    return status;
  }
  try {
    fs.mkdirSync(dest, { recursive: true });
    let placedVersion: string | null = null;
    try {
      placedVersion = fs.readFileSync(path.join(dest, VERSION_FILE), "utf8").trim();
    } catch {
      /* first run */
    }
    const stale = rel.files.filter((f) => {
      const src = fs.statSync(path.join(rel.sourceDir, f));
      let have: fs.Stats | null = null;
      try {
        have = fs.statSync(path.join(dest, f));
      } catch {
        /* missing */
      }
      return placedVersion !== version || !have?.isFile() || have.size !== src.size;
    });
    if (stale.length) {
      fs.rmSync(path.join(dest, VERSION_FILE), { force: true }); // half-updated trees never claim the new version
      for (const f of stale) {
        placeFileAtomically(path.join(dest, f), (tmp) => {
          try {
            fs.linkSync(path.join(rel.sourceDir, f), tmp); // same file system: no 49 MB copy per data dir
          } catch {
            fs.copyFileSync(path.join(rel.sourceDir, f), tmp);
          }
        });
      }
      fs.writeFileSync(path.join(dest, VERSION_FILE), `${version}\n`);
    }
    status.placed = true;
  } catch (err) {
    status.error = `placing ${rel.pkg} files failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  return status;
}

/**
 * Seed the release's OS profile once (preseed template, Debian mirror), when its files are placed. An operator
 * who edits or deletes it keeps their choice: the seed is recorded as an event and never repeated. Through the
 * Store; several processes starting together seed it once (the check and insert run in one transaction, and the
 * unique profile name turns a concurrent second insert into "already there").
 */
export async function seedInstallerProfile(d: Domain, s: InstallerFilesStatus, mirror = "http://deb.debian.org/debian"): Promise<{ id: number } | null> {
  if (!s.placed) return null;
  const kind = "os-profile.seeded";
  const message = `OS profile ${s.profileName} seeded`;
  const input = osProfileCreateSchema.parse({
    name: s.profileName,
    kind: "installer",
    osFamily: "debian",
    kernel: s.kernel,
    initrd: s.initrd,
    template: "preseed",
    options: { mirror },
  });
  const store = storeOf(d);
  const { events, osProfiles } = store.t;
  const now = new Date();
  const id = await store.transaction(async (tx) => {
    const [seeded] = await tx.select({ id: events.id }).from(events).where(and(eq(events.kind, kind), eq(events.message, message))).limit(1);
    if (seeded) return null;
    const [row] = await tx
      .insert(osProfiles)
      .values({
        name: input.name,
        kind: input.kind,
        osFamily: input.osFamily ?? null,
        kernel: input.kernel ?? null,
        initrd: input.initrd ?? null,
        kernelArgs: null,
        imageUrl: null,
        imageSha256: null,
        imageFormat: null,
        template: input.template ?? null,
        options: input.options as Record<string, unknown>,
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing({ target: osProfiles.name })
      .returning({ id: osProfiles.id });
    if (!row) return null; // a profile of that name exists (the operator's, or another process's seed)
    await recordStoreEvent(store, tx, { actor: "system", machineId: null, kind, message, payload: { profileId: row.id, version: s.version } });
    return row.id;
  });
  if (id === null) return null;
  d.bus.publish({ type: "os-profile.changed", profileId: id });
  return { id };
}
