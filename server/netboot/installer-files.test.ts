import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { deleteProfile, listProfiles } from "./profiles";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { DEBIAN_12_AMD64, packageVersion, seedInstallerProfile, syncInstallerFiles, type InstallerRelease } from "./installer-files";
import { NetbootService } from "./service";
import { storeNetbootSettings } from "./settings";

function fakeRelease(dir: string): InstallerRelease {
  fs.mkdirSync(path.join(dir, "src"), { recursive: true });
  fs.writeFileSync(path.join(dir, "src/linux"), "kernel-v1");
  fs.writeFileSync(path.join(dir, "src/initrd.gz"), "initrd-v1");
  fs.writeFileSync(path.join(dir, "version.info"), "Debian version:  12 (bookworm)\nInstaller build: 20990101\n");
  return { ...DEBIAN_12_AMD64, pkg: "rackhand-no-such-package", sourceDir: path.join(dir, "src"), versionInfo: path.join(dir, "version.info") };
}

describe("installer files (fake package tree)", () => {
  let tmp: string;
  beforeEach(() => void (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rh-inst-"))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("places kernel and initrd with the version, and only rewrites what changed", () => {
    const rel = fakeRelease(tmp);
    const http = path.join(tmp, "http");
    expect(packageVersion(rel)).toBe("20990101"); // dpkg does not know the package: version.info
    const s = syncInstallerFiles(http, rel);
    expect(s).toMatchObject({ placed: true, version: "20990101", error: null, kernel: "installers/debian-12-amd64/linux", initrd: "installers/debian-12-amd64/initrd.gz" });
    const dest = path.join(http, "installers/debian-12-amd64");
    expect(fs.readFileSync(path.join(dest, "linux"), "utf8")).toBe("kernel-v1");
    expect(fs.readFileSync(path.join(dest, "VERSION"), "utf8")).toBe("20990101\n");
    const ino = fs.statSync(path.join(dest, "initrd.gz")).ino;
    syncInstallerFiles(http, rel);
    expect(fs.statSync(path.join(dest, "initrd.gz")).ino).toBe(ino); // unchanged: not touched

    // A package upgrade (dpkg replaces the files): new version placed, no temp file left.
    fs.rmSync(path.join(rel.sourceDir, "linux"));
    fs.writeFileSync(path.join(rel.sourceDir, "linux"), "kernel-v2!");
    expect(syncInstallerFiles(http, rel, "20990202")).toMatchObject({ placed: true, version: "20990202" });
    expect(fs.readFileSync(path.join(dest, "linux"), "utf8")).toBe("kernel-v2!");
    expect(fs.readFileSync(path.join(dest, "VERSION"), "utf8")).toBe("20990202\n");
    expect(fs.readdirSync(dest).sort()).toEqual(["VERSION", "initrd.gz", "linux"]);

    // A file damaged in the tree (other size) is replaced even at the same version.
    fs.rmSync(path.join(dest, "initrd.gz"));
    fs.writeFileSync(path.join(dest, "initrd.gz"), "x");
    syncInstallerFiles(http, rel, "20990202");
    expect(fs.readFileSync(path.join(dest, "initrd.gz"), "utf8")).toBe("initrd-v1");
  });

  it("reports a missing package instead of throwing, and a failed copy keeps no VERSION", () => {
    const rel = { ...fakeRelease(tmp), versionInfo: path.join(tmp, "absent") };
    const s = syncInstallerFiles(path.join(tmp, "http"), rel);
    expect(s).toMatchObject({ placed: false, version: null });
    expect(s.error).toMatch(/rackhand-no-such-package is not installed .*install-system-deps/);

    fs.rmSync(path.join(rel.sourceDir, "initrd.gz"));
    const broken = syncInstallerFiles(path.join(tmp, "http"), rel, "1.0");
    expect(broken.placed).toBe(false);
    expect(broken.error).toMatch(/placing .* failed: .*initrd\.gz/);
    expect(fs.existsSync(path.join(tmp, "http/installers/debian-12-amd64/VERSION"))).toBe(false);
  });
});

describe("the seeded Debian 12 (installer) profile", () => {
  let h: Harness;
  let tmp: string;
  beforeEach(() => {
    h = createHarness();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rh-inst-"));
  });
  afterEach(() => {
    h.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("is created once, valid, and not re-created after the operator deletes it", async () => {
    const s = syncInstallerFiles(path.join(tmp, "http"), fakeRelease(tmp));
    const seeded = await seedInstallerProfile(h.domain, s);
    expect(seeded).not.toBeNull();
    const p = (await listProfiles(h.domain)).find((x) => x.name === "Debian 12 (installer)");
    expect(p).toMatchObject({ kind: "installer", osFamily: "debian", template: "preseed", kernel: "installers/debian-12-amd64/linux", initrd: "installers/debian-12-amd64/initrd.gz" });
    expect(p!.options.mirror).toBe("http://deb.debian.org/debian");
    expect(await seedInstallerProfile(h.domain, s)).toBeNull();
    await deleteProfile(h.domain, seeded!.id, "test");
    expect(await seedInstallerProfile(h.domain, s)).toBeNull();
    expect(await listProfiles(h.domain)).toEqual([]);
  });

  it("is not seeded while the files are missing", async () => {
    expect(await seedInstallerProfile(h.domain, { ...syncInstallerFiles(path.join(tmp, "http"), fakeRelease(tmp)), placed: false })).toBeNull();
    expect(await listProfiles(h.domain)).toEqual([]);
  });

  it("boots a deploying machine into the placed installer on BIOS (pxelinux), UEFI (GRUB) and iPXE entries", async () => {
    await storeNetbootSettings(h.domain, { mode: "external", interface: "rhnb0", serverAddress: "10.0.0.1", rangeStart: "10.0.200.1", rangeEnd: "10.0.200.99", netmask: "255.255.0.0", httpBaseUrl: "http://10.0.0.1:3000" }, "test");
    const nb = new NetbootService(h.domain, { dataDir: h.dataDir, debounceMs: 5, installerReleases: [fakeRelease(tmp)] });
    try {
      await nb.start();
      expect(nb.status().installerFiles).toEqual([expect.objectContaining({ placed: true, version: "20990101", profileName: "Debian 12 (installer)" })]);
      expect(fs.readFileSync(path.join(nb.httpRoot, "installers/debian-12-amd64/linux"), "utf8")).toBe("kernel-v1");
      const { osProfiles, machines } = h.store.t;
      const [profile] = await h.store.db.select().from(osProfiles).where(eq(osProfiles.name, "Debian 12 (installer)"));
      const { id } = await enrollMachine(h.domain, machineInput(1) as never, "test");
      await h.store.db.update(machines).set({ osProfileId: profile!.id }).where(eq(machines.id, id));
      for (const a of ["manage", "provide", "deploy"] as const) await transition(h.domain, id, a, { actor: "test" });
      await nb.whenIdle();
      const entry = (f: string) => fs.readFileSync(path.join(nb.root, "tftp", f), "utf8");
      expect(entry("pxelinux.cfg/01-52-54-00-00-00-01")).toContain("KERNEL http://10.0.0.1:3000/boot/installers/debian-12-amd64/linux");
      expect(entry("grub/grub.cfg-01-52-54-00-00-00-01")).toContain("linux ($root)/boot/installers/debian-12-amd64/linux");
      expect(entry("grub/grub.cfg-01-52-54-00-00-00-01")).toContain("initrd ($root)/boot/installers/debian-12-amd64/initrd.gz");
      expect(entry("ipxe/52-54-00-00-00-01.ipxe")).toMatch(/kernel http:\/\/10\.0\.0\.1:3000\/boot\/installers\/debian-12-amd64\/linux .*preseed\.cfg/);
    } finally {
      await nb.stop();
    }
  });
});

describe("the real debian-installer-12-netboot-amd64 package (scripts/install-system-deps.sh)", () => {
  it("is installed and its files are placed", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rh-inst-"));
    try {
      const v = packageVersion(DEBIAN_12_AMD64);
      expect(v, "debian-installer-12-netboot-amd64 missing: run scripts/install-system-deps.sh test").toMatch(/^\d{8}/);
      const s = syncInstallerFiles(tmp, DEBIAN_12_AMD64, v);
      expect(s).toMatchObject({ placed: true, error: null });
      const linux = fs.readFileSync(path.join(tmp, "installers/debian-12-amd64/linux"));
      expect(linux.subarray(0x202, 0x206).toString("latin1")).toBe("HdrS"); // an x86 Linux boot image
      expect(fs.statSync(path.join(tmp, "installers/debian-12-amd64/initrd.gz")).size).toBe(fs.statSync(path.join(DEBIAN_12_AMD64.sourceDir, "initrd.gz")).size);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("profile names with parentheses (the seeded name)", () => {
  it("accepts ( ) and still refuses control characters, quotes, shell and path syntax, non-ASCII and over-long names", async () => {
    const { osProfileCreateSchema } = await import("../../lib/netboot");
    const base = { kind: "installer", osFamily: "debian", kernel: "installers/x/linux", initrd: "installers/x/initrd.gz", template: "preseed" } as const;
    expect(osProfileCreateSchema.safeParse({ ...base, name: "Debian 12 (installer)" }).success).toBe(true);
    for (const bad of ["a\nb", "a\rb", "a\0b", "a\\b", 'a"b', "a'b", "a$(reboot)", "a;b", "a&b", "../x", "(x", "é", "x".repeat(65)]) {
      expect(osProfileCreateSchema.safeParse({ ...base, name: bad }).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
