/** Hostile input for the fields of an agent-install OS profile (kind agent_install): refused with a clear message. */
import { describe, expect, it } from "vitest";
import { osProfileCreateSchema } from "./netboot";

const base = { name: "Debian 12 (agent install)", kind: "agent_install" as const, osFamily: "debian" as const };
const withOptions = (options: Record<string, unknown>) => osProfileCreateSchema.safeParse({ ...base, options });
const message = (r: ReturnType<typeof withOptions>) => (r.success ? "" : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));

const HOSTILE_STRINGS = ["a\nb", "a\rb", "a\0b", "a\\b", 'a"b', "a'b", "$(reboot)", "a;b", "a&b", "..", "../etc", "grub-pc\ninstall", "é", "ü-paket", "x".repeat(101)];

describe("agent install profile", () => {
  it("accepts the defaults: no layout (ESP 512 MiB, no swap, root = rest), bookworm, user rackhand", () => {
    const r = osProfileCreateSchema.parse(base);
    expect(r.options).toMatchObject({ suite: "bookworm", username: "rackhand", packages: [], sshKeys: [] });
    expect(withOptions({ installLayout: { swapMiB: 1024, rootMiB: 20480 } }).success).toBe(true);
  });

  it.each([
    [{ espMiB: 10 }, /at least 64 MiB/],
    [{ espMiB: 5000 }, /At most 4096/],
    [{ swapMiB: -1 }, /swapMiB/],
    [{ swapMiB: 1.5 }, /Whole MiB/],
    [{ rootMiB: 100 }, /at least 2048 MiB/],
    [{ rootMiB: 1e12 }, /At most 64 TiB/],
    [{ rootMiB: "4096" }, /rootMiB/],
    [{ swapMiB: "512; reboot" }, /swapMiB/],
    [{ espMiB: Number.NaN }, /espMiB/],
    [{ swapMiB: Number.POSITIVE_INFINITY }, /swapMiB/],
  ])("refuses layout %j", (layout, re) => {
    const r = withOptions({ installLayout: layout });
    expect(r.success).toBe(false);
    expect(message(r)).toMatch(re);
  });

  it.each(HOSTILE_STRINGS)("refuses the user name %j", (username) => {
    const r = withOptions({ username });
    expect(r.success).toBe(false);
    expect(message(r)).toMatch(/options\.username/);
  });

  it.each(["root", "daemon", "sshd", "www-data", "nobody"])("refuses the system account %s as the user", (username) => {
    expect(message(withOptions({ username }))).toMatch(new RegExp(`${username} is a system account of Debian`));
  });

  it.each(HOSTILE_STRINGS.filter((s) => s !== ".." /* a dot-only name is no package, refused below */))("refuses the package name %j", (pkg) => {
    const r = withOptions({ packages: ["htop", pkg] });
    expect(r.success).toBe(false);
    expect(message(r)).toMatch(/options\.packages\.1/);
  });

  it("refuses a package name that does not start with a letter or digit, and more than 100 packages", () => {
    expect(withOptions({ packages: [".."] }).success).toBe(false);
    expect(withOptions({ packages: ["-y"] }).success).toBe(false);
    expect(withOptions({ packages: Array.from({ length: 101 }, (_, i) => `p${i}`) }).success).toBe(false);
  });

  it("initramfs drivers: generic by default, targeted when asked", () => {
    expect(osProfileCreateSchema.parse(base).options.initramfsDrivers).toBe("generic");
    expect(osProfileCreateSchema.parse({ ...base, options: { initramfsDrivers: "targeted" } }).options.initramfsDrivers).toBe("targeted");
  });

  it.each([...HOSTILE_STRINGS, "dep", "most", "MODULES=dep", "targeted\n", "generic;", "Targeted", ""])("refuses the initramfs drivers %j", (initramfsDrivers) => {
    const r = withOptions({ initramfsDrivers });
    expect(r.success).toBe(false);
    expect(message(r)).toMatch(/options\.initramfsDrivers/);
  });

  it.each(["sid", "bookworm\n", "bookworm;", "", "../bookworm", "trixie$(id)"])("refuses the suite %j", (suite) => {
    expect(withOptions({ suite }).success).toBe(false);
  });

  it("installs Debian only, and builds no RAID", () => {
    expect(message(osProfileCreateSchema.safeParse({ ...base, osFamily: "rhel" }))).toMatch(/An agent install installs Debian/);
    expect(message(withOptions({ raid: { level: 1, devices: ["/dev/vda", "/dev/vdb"] } }))).toMatch(/does not build RAID/);
  });

  it.each(["ssh-ed25519 AAAA\nssh-rsa BBBB", "ssh-ed25519 AAAA x\u2028y", 'ssh-ed25519 AAAA "x"', "ssh-ed25519 AAAA $(id)\\"])("refuses the SSH key %j", (key) => {
    expect(withOptions({ sshKeys: [key] }).success).toBe(false);
  });
});
