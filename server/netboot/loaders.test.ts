import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dhcpBootLines, LOADERS, LoaderInstaller, type LoaderSpec } from "./loaders";

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "rh-loaders-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Sources in a directory of the test's own: name → content, absent names are missing. */
function fixture(files: Record<string, string>) {
  const src = tmp();
  for (const [n, c] of Object.entries(files)) fs.writeFileSync(path.join(src, n), c);
  const tftp = path.join(tmp(), "tftp");
  const inst = new LoaderInstaller(tftp, {
    resolveSource: (s: LoaderSpec) => path.join(src, s.name),
    provenance: (_f, pkg) => ({ package: pkg, version: "1.0-test" }),
  });
  return { src, tftp, inst };
}

describe("boot loaders from Debian's packages", () => {
  it("copies every loader with its provenance, and rewrites only what changed", () => {
    const all = Object.fromEntries(LOADERS.map((l) => [l.name, `bytes of ${l.name}`]));
    const { src, tftp, inst } = fixture(all);
    const st = inst.install();
    expect(st.every((s) => s.error === null)).toBe(true);
    for (const l of LOADERS) expect(fs.readFileSync(path.join(tftp, l.name), "utf8")).toBe(`bytes of ${l.name}`);
    const shim = st.find((s) => s.name === "shimx64.efi")!;
    expect(shim).toMatchObject({ package: "shim-signed", version: "1.0-test", size: "bytes of shimx64.efi".length });
    expect(shim.sha256).toMatch(/^[0-9a-f]{64}$/);
    const ino = fs.statSync(path.join(tftp, "grubx64.efi")).ino;
    inst.install();
    expect(fs.statSync(path.join(tftp, "grubx64.efi")).ino).toBe(ino); // unchanged: not rewritten
    fs.writeFileSync(path.join(src, "grubx64.efi"), "a newer GRUB");
    const after = inst.install().find((s) => s.name === "grubx64.efi")!;
    expect(fs.readFileSync(path.join(tftp, "grubx64.efi"), "utf8")).toBe("a newer GRUB");
    expect(after.sha256).not.toBe(st.find((s) => s.name === "grubx64.efi")!.sha256);
    expect(fs.readdirSync(tftp).filter((n) => n.startsWith("."))).toEqual([]); // no temp file left
    // A copy changed behind Rackhand's back (same size) is put back at the next install.
    fs.writeFileSync(path.join(tftp, "shimx64.efi"), "x".repeat("bytes of shimx64.efi".length));
    inst.install();
    expect(fs.readFileSync(path.join(tftp, "shimx64.efi"), "utf8")).toBe("bytes of shimx64.efi");
  });

  it("reports a missing loader with the package to install, removes a stale copy, and gives its clients no boot file", () => {
    const all = Object.fromEntries(LOADERS.map((l) => [l.name, "x"]));
    const { src, tftp, inst } = fixture(all);
    inst.install();
    fs.rmSync(path.join(src, "grubx64.efi"));
    const st = inst.install();
    const grub = st.find((s) => s.name === "grubx64.efi")!;
    expect(grub.error).toMatch(/not found: install the Debian package grub-efi-amd64-signed/);
    expect(fs.existsSync(path.join(tftp, "grubx64.efi"))).toBe(false);
    const ok = new Set(st.filter((s) => !s.error).map((s) => s.name));
    const lines = dhcpBootLines("10.0.0.1", "http://10.0.0.1:3000", ok);
    expect(lines.some((l) => l.startsWith("dhcp-boot=") && l.includes("shimx64.efi"))).toBe(false);
    expect(lines).toContain("# UEFI PXE: no boot file, grubx64.efi missing from the TFTP root (see the Settings page)");
    expect(lines.some((l) => l.startsWith("dhcp-boot=") && l.includes("lpxelinux.0"))).toBe(true);
    expect(inst.status().find((s) => s.name === "grubx64.efi")!.error).toBe(grub.error);
  });

  it("leaves BIOS clients without a boot file when ldlinux.c32 is missing (lpxelinux.0 alone cannot start)", () => {
    const lines = dhcpBootLines("10.0.0.1", "http://10.0.0.1:3000", new Set(LOADERS.map((l) => l.name).filter((n) => n !== "ldlinux.c32")));
    expect(lines.filter((l) => l.startsWith("dhcp-boot=")).join("\n")).not.toContain("lpxelinux.0");
  });

  it("answers HTTP Boot clients with a URL, and with nothing when the base URL would break the dnsmasq line", () => {
    expect(dhcpBootLines("10.0.0.1", "http://10.0.0.1:3000/", null)).toContain("dhcp-boot=tag:!ipxe,tag:efihttp,http://10.0.0.1:3000/boot/snponly.efi");
    const bad = dhcpBootLines("10.0.0.1", "http://10.0.0.1:3000/a,b", null);
    expect(bad.filter((l) => l.includes("tag:efihttp,") && l.startsWith("dhcp-boot"))).toEqual([]);
    expect(bad.join("\n")).toContain("HTTP base URL contains a comma");
  });

  it("sends iPXE (on either firmware) boot.ipxe over HTTP, so HTTP Boot needs no TFTP; over TFTP when the URL cannot be given", () => {
    expect(dhcpBootLines("10.0.0.1", "http://10.0.0.1:3000/", null)).toContain("dhcp-boot=tag:ipxe,http://10.0.0.1:3000/boot/boot.ipxe");
    for (const url of ["http://10.0.0.1:3000/a,b", "http://10.0.0.1:3000/a b", "http://10.0.0.1:3000/#x"]) {
      const ipxe = dhcpBootLines("10.0.0.1", url, null).filter((l) => l.startsWith("dhcp-boot=tag:ipxe,"));
      expect(ipxe).toEqual(["dhcp-boot=tag:ipxe,boot.ipxe,,10.0.0.1"]);
    }
  });
});
