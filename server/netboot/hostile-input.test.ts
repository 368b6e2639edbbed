/**
 * Injection into boot files through settings and names (issue 10, defect 6): the HTTP base URL, machine names
 * that dnsmasq reads as keywords, over-long FQDNs and control characters in SSH keys. Each is refused at the
 * boundary (zod schemas, through the real routers) and again by the renderer (defence in depth).
 */
import { describe, expect, it } from "vitest";
import { baseUrlSchema, netbootSettingsSchema, profileOptionsSchema, sshKeySchema } from "../../lib/netboot";
import { hostnameSchema } from "../../lib/schemas";
import { createHarness } from "../testing/harness";
import { renderHostLine } from "./render-boot";
import { renderAutoinstallUserData, renderKickstart, renderPreseed, type InstallContext } from "./templates/install";
import { bootTarget, machineTree, type MachineBootRow, type TreeContext } from "./tree";

/** The hostile values every field must refuse (or contain): per /work/HELPERS.md. */
const HOSTILE = ["a\nb", "a\rb", "a\u0000b", "a\\b", "a'b", 'a"b', "$(reboot)", "a;reboot", "a&b", "../x", "é"];

const settings = netbootSettingsSchema.parse({ mode: "managed", interface: "rhnb0", domain: "lab.example", httpBaseUrl: "http://10.77.0.1:3000" });
const ctx = (over: Partial<TreeContext["settings"]> = {}): TreeContext => ({
  settings: { ...settings, ...over },
  paths: { hostsDir: "/x/hosts.d", tftpRoot: "/x/tftp", leaseFile: "/x/leases", pidFile: "/x/pid" },
  runAs: "root",
  installToken: () => "tok",
  agentNonce: () => "0".repeat(64),
});
const row = (over: Partial<MachineBootRow> = {}): MachineBootRow => ({
  id: 7,
  name: "node-007",
  state: "deploying",
  nics: [{ mac: "52:54:00:aa:bb:07", ip: "10.77.0.57", isBoot: true }],
  profile: null,
  sessionId: null,
  ...over,
});

describe("HTTP base URL", () => {
  const bad = [
    "http://host/a;reboot;",
    "http://host/?a=1&b=2",
    "http://host/a&b",
    "http://host/#frag",
    "http://host/a b",
    "http://host/a\tb",
    "http://host/a\nset root=(x)",
    "http://host/a\rb",
    "http://host/a\u0000",
    "http://host/a\\b",
    "http://host/a'b",
    'http://host/a"b',
    "http://host/$(reboot)",
    "http://host/${x}",
    "http://host/../etc",
    "http://hôst/",
    "http://host:99999/",
    "ftp://host/",
    "javascript:alert(1)",
    `http://${"a".repeat(250)}.example/`,
  ];
  it.each(bad)("refuses %j at the boundary", (url) => {
    expect(baseUrlSchema.safeParse(url).success).toBe(false);
    expect(netbootSettingsSchema.safeParse({ httpBaseUrl: url }).success).toBe(false);
  });

  it("accepts plain base URLs", () => {
    for (const url of ["http://10.77.0.1:3000", "https://rackhand.lab.example/prefix/", "http://[fd00::1]:8080", "http://rackhand"]) {
      expect(baseUrlSchema.safeParse(url).success, url).toBe(true);
    }
  });

  it("netboot.saveSettings refuses it with a clear message and stores nothing", async () => {
    const h = createHarness();
    try {
      const admin = h.admin;
      const before = await admin.netboot.settings();
      await expect(admin.netboot.saveSettings({ ...before, httpBaseUrl: "http://host/a;reboot;" })).rejects.toMatchObject({
        code: "BAD_REQUEST",
        message: expect.stringMatching(/no query, fragment, spaces, quotes or ; & \? #/),
      });
      expect((await admin.netboot.settings()).httpBaseUrl).toBe(before.httpBaseUrl);
    } finally {
      h.close();
    }
  });

  it("the boot entry renderer refuses a stored bad URL (defence in depth)", () => {
    for (const url of ["http://host/a;reboot;", "http://host/?a=1&b=2"]) {
      expect(() => bootTarget(row(), ctx({ httpBaseUrl: url }))).toThrow(/httpBaseUrl/);
    }
  });
});

describe("machine names dnsmasq would read as keywords", () => {
  const keywords = ["ignore", "IGNORE", "infinite", "deleted", "90m", "12h", "3600", "1w", "7d", "45s", "123", "10.0.0.1", "node.42"];
  it.each(keywords)("refuses %j at the boundary", (name) => {
    const r = hostnameSchema.safeParse(name);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toMatch(/keyword|lease time|all-digit/);
  });

  it.each([...HOSTILE, "a,b", "a:b", "a*b", "a#b", "a b", "x".repeat(64), `${"a.".repeat(127)}a`])("refuses %j", (name) => {
    expect(hostnameSchema.safeParse(name).success).toBe(false);
  });

  it("keeps ordinary names, including ones that merely contain a keyword or a number", () => {
    for (const name of ["node-007", "ignore-me", "infinite-loop", "12h-rack", "n90m", "r1.lab.example"]) {
      expect(hostnameSchema.safeParse(name).success, name).toBe(true);
    }
  });

  it("machines.enroll refuses them through the router, and nothing is written", async () => {
    const h = createHarness();
    try {
      const op = h.operator;
      for (const name of ["ignore", "90m", "infinite"]) {
        await expect(op.machines.enroll({ name, bootMac: "52:54:00:aa:00:01" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
      }
      expect((await op.machines.list({})).total).toBe(0);
    } finally {
      h.close();
    }
  });

  it("the dhcp-host renderer refuses them too (defence in depth)", () => {
    for (const name of ["ignore", "infinite", "90m", "12h", "3600", "a,b", "a\nb"]) {
      expect(() => renderHostLine("52:54:00:aa:bb:07", "10.77.0.57", name), name).toThrow();
      expect(() => machineTree(row({ name }), ctx()), name).toThrow();
    }
    expect(renderHostLine("52:54:00:aa:bb:07", "10.77.0.57", "node-007")).toBe("52:54:00:aa:bb:07,10.77.0.57,node-007\n");
  });
});

describe("fully qualified names", () => {
  it("the boundary refuses a name over 253 characters or with a label over 63", () => {
    expect(hostnameSchema.safeParse(`${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}`).success).toBe(false);
    expect(hostnameSchema.safeParse("x".repeat(64)).success).toBe(false);
  });

  it("a name that only exceeds 253 with the domain is refused where it is rendered: boot tree and kickstart", () => {
    const name = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(55)}`; // 247: valid alone
    expect(hostnameSchema.safeParse(name).success).toBe(true);
    expect(() => machineTree(row({ name }), ctx({ domain: "lab.example" }))).toThrow(/at most 253/);
    const c: InstallContext = {
      machineId: 7,
      sessionId: 1,
      hostname: name,
      domain: "lab.example",
      options: profileOptionsSchema.parse({}),
      net: { interfaces: [], dns: [], search: [] },
      filesUrl: "http://h/boot/m/7/t",
      doneUrl: "http://h/boot/m/7/t/done",
    };
    expect(() => renderKickstart(c)).toThrow(/at most 253/);
    expect(() => renderPreseed(c)).toThrow(/at most 253/);
    expect(() => renderKickstart({ ...c, hostname: "node-007" })).not.toThrow();
  });
});

describe("SSH keys", () => {
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps";
  const badComments = ["\u007f", "\u0080", "\u0085", "\u009b", "\u200e", "\ufeff", "\u2028", "\u2029", "\u0000", "\n", "\r", "\t", "'", '"', "\\"];
  it.each(badComments)("refuses a comment with U+%s", (ch) => {
    const line = `${key} ops${ch}@example`;
    expect(sshKeySchema.safeParse(line).success).toBe(false);
    expect(profileOptionsSchema.safeParse({ sshKeys: [line] }).success).toBe(false);
  });

  it("keeps printable comments, non-ASCII included", () => {
    for (const c of ["ops@example", "José Núñez@laptop", "ops $(x) ; & ..", "運用@example"]) {
      expect(sshKeySchema.safeParse(`${key} ${c}`).success, c).toBe(true);
    }
  });

  it("the user-data and preseed renderers refuse a key with a C1 or DEL character (defence in depth)", () => {
    const c: InstallContext = {
      machineId: 7,
      sessionId: 1,
      hostname: "node-007",
      domain: "lab.example",
      options: { ...profileOptionsSchema.parse({}), sshKeys: [`${key} ops\u0085@example`] },
      net: { interfaces: [], dns: [], search: [] },
      filesUrl: "http://h/boot/m/7/t",
      doneUrl: "http://h/boot/m/7/t/done",
    };
    expect(() => renderAutoinstallUserData(c)).toThrow(/sshKeys/);
    expect(() => renderPreseed(c)).toThrow(/sshKeys/);
    expect(() => renderPreseed({ ...c, options: { ...c.options, sshKeys: [`${key} ops\u007f`] } })).toThrow(/sshKeys/);
  });
});
