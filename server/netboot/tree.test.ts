import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { netbootSettingsSchema } from "../../lib/netboot";
import { expectGolden } from "../testing/golden";
import { renderGrub, renderIpxe, renderPxelinux } from "./render-boot";
import { baseTree, bootTarget, desiredTree, machineTree, type MachineBootRow, type TreeContext } from "./tree";

const GOLDEN = path.join(import.meta.dirname, "golden");
const settings = netbootSettingsSchema.parse({
  mode: "managed",
  interface: "rhnb0",
  serverAddress: "10.77.0.1",
  rangeStart: "10.77.0.100",
  rangeEnd: "10.77.0.200",
  gateway: "10.77.0.254",
  dnsServers: ["10.77.0.53", "10.77.0.54"],
  domain: "lab.example",
  httpBaseUrl: "http://10.77.0.1:3000",
  ipv6RouterAdvertisements: true,
});
const ctx: TreeContext = {
  settings,
  paths: { hostsFile: "/srv/rh/netboot/hosts", hostsDir: "/srv/rh/netboot/hosts.d", tftpRoot: "/srv/rh/netboot/tftp", leaseFile: "/srv/rh/netboot/dnsmasq.leases", pidFile: "/srv/rh/netboot/dnsmasq.pid" },
  runAs: "root",
  installToken: (id, session) => `tok-${id}-${session}`,
  agentNonce: (id, session) => `${id}`.padStart(32, "a") + `${session}`.padStart(32, "b"),
};
const preseedProfile = { id: 3, kind: "installer" as const, kernel: "debian/12/linux", initrd: "debian/12/initrd.gz", kernelArgs: "console=ttyS0,115200 quiet", template: "preseed" as const, mirror: null };
const row = (over: Partial<MachineBootRow> = {}): MachineBootRow => ({
  id: 7,
  name: "node-007",
  state: "deployed",
  nics: [
    { mac: "52:54:00:aa:bb:07", ip: "10.77.0.57", isBoot: true },
    { mac: "52:54:00:aa:bc:07", ip: null, isBoot: false },
  ],
  profile: null,
  sessionId: null,
  ...over,
});

describe("boot tree renderers (golden files)", () => {
  it("renders dnsmasq.conf, and dnsmasq --test accepts it", () => {
    const conf = baseTree(ctx).get("dnsmasq.conf")!;
    expectGolden(GOLDEN, "dnsmasq.conf", conf);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-conf-"));
    fs.writeFileSync(path.join(dir, "dnsmasq.conf"), conf);
    const r = spawnSync("dnsmasq", ["--test", "-C", path.join(dir, "dnsmasq.conf")], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true });
    expect(r.error, "dnsmasq must be installed (scripts/install-system-deps.sh test)").toBeUndefined();
    expect(r.stderr + r.stdout).toContain("syntax check OK");
    expect(r.status).toBe(0);
  });

  it("boots local disk outside deploying/inspecting/cleaning, the agent RAM disk inside", () => {
    for (const [state, file] of [["deploying", "agent"], ["inspecting", "inspect"]] as const) {
      // Machines that netboot have a session (the event that moved them into their state): the agent nonce's input.
      const t = machineTree(row({ state, sessionId: 41 }), ctx);
      expectGolden(GOLDEN, `${file}.pxelinux`, t.get("tftp/pxelinux.cfg/01-52-54-00-aa-bb-07")!);
      expectGolden(GOLDEN, `${file}.grub`, t.get("tftp/grub/grub.cfg-01-52-54-00-aa-bb-07")!);
      expectGolden(GOLDEN, `${file}.ipxe`, t.get("tftp/ipxe/52-54-00-aa-bb-07.ipxe")!);
    }
    // A machine booting its local disk has no boot entry of its own (the loaders fall back to the local-boot
    // defaults, rendered by the same functions): only its host lines.
    const local = bootTarget(row(), ctx);
    expect(local).toEqual({ kind: "local", reason: "deployed, booting from local disk" });
    expectGolden(GOLDEN, "local.pxelinux", renderPxelinux("node-007", local));
    expectGolden(GOLDEN, "local.grub", renderGrub("node-007", local));
    expectGolden(GOLDEN, "local.ipxe", renderIpxe("node-007", local));
    for (const state of ["enrolled", "manageable", "available", "deployed", "deploy_failed"] as const) {
      expect([...machineTree(row({ state }), ctx).keys()].sort(), state).toEqual(["hosts.d/52-54-00-aa-bb-07", "hosts.d/52-54-00-aa-bc-07"]);
    }
    expect([...machineTree(row({ state: "inspecting", sessionId: 41 }), ctx).keys()].sort()).toEqual([
      "hosts.d/52-54-00-aa-bb-07",
      "hosts.d/52-54-00-aa-bc-07",
      "tftp/grub/grub.cfg-01-52-54-00-aa-bb-07",
      "tftp/grub/grub.cfg-01-52-54-00-aa-bc-07",
      "tftp/ipxe/52-54-00-aa-bb-07.ipxe",
      "tftp/ipxe/52-54-00-aa-bc-07.ipxe",
      "tftp/pxelinux.cfg/01-52-54-00-aa-bb-07",
      "tftp/pxelinux.cfg/01-52-54-00-aa-bc-07",
    ]);
    const t = machineTree(row(), ctx);
    expect(t.get("hosts.d/52-54-00-aa-bb-07")).toBe("52:54:00:aa:bb:07,10.77.0.57,node-007\n");
    expect(t.get("hosts.d/52-54-00-aa-bc-07")).toBe("52:54:00:aa:bc:07\n");
  });

  it("puts the per-boot agent nonce on the agent's kernel command line only, and refuses a malformed one", () => {
    const nonce = ctx.agentNonce(7, 41);
    const t = machineTree(row({ state: "inspecting", sessionId: 41 }), ctx);
    for (const f of ["tftp/pxelinux.cfg/01-52-54-00-aa-bb-07", "tftp/grub/grub.cfg-01-52-54-00-aa-bb-07", "tftp/ipxe/52-54-00-aa-bb-07.ipxe"]) {
      expect(t.get(f)).toContain(` rackhand.nonce=${nonce}`);
    }
    // Another session (a new job), another nonce; the installer's command line never carries one.
    expect(machineTree(row({ state: "inspecting", sessionId: 42 }), ctx).get("tftp/ipxe/52-54-00-aa-bb-07.ipxe")).not.toContain(nonce);
    const installer = machineTree(row({ state: "deploying", sessionId: 41, profile: preseedProfile }), ctx);
    expect([...installer.values()].join("")).not.toContain("rackhand.nonce");
    for (const bad of [`${nonce}\n`, `${"a".repeat(63)}\0`, "A".repeat(64), "x rackhand.api=http://evil", ""]) {
      expect(() => machineTree(row({ state: "inspecting", sessionId: 41 }), { ...ctx, agentNonce: () => bad })).toThrow(/agent nonce: not 64 hex digits/);
    }
  });

  it("points the agent RAM disk at the Debian root file system when that is the agent environment", () => {
    const debian: TreeContext = { ...ctx, settings: { ...settings, agentEnvironment: "debian" } };
    const t = bootTarget(row({ state: "deploying" }), debian);
    expect(t.kind === "netboot" && t.args).toContain("rackhand.rootfs=http://10.77.0.1:3000/boot/ramdisk/rootfs.tar.zst");
    expect(machineTree(row({ state: "deploying" }), debian).get("tftp/ipxe/52-54-00-aa-bb-07.ipxe")).toContain(" rackhand.rootfs=http://10.77.0.1:3000/boot/ramdisk/rootfs.tar.zst");
    const busybox = bootTarget(row({ state: "deploying" }), ctx);
    expect(busybox.kind === "netboot" && busybox.args.some((a) => a.startsWith("rackhand.rootfs="))).toBe(false);
  });

  it("names the agent payload and its sha256 on the RAM disk's command line, in every loader's entry, and refuses a bad manifest value", () => {
    const sha = "0123456789abcdef".repeat(4);
    const withPayload: TreeContext = { ...ctx, agentPayload: { file: "agent.cpio.zst", sha256: sha } };
    const t = bootTarget(row({ state: "deploying" }), withPayload);
    expect(t.kind === "netboot" && t.args).toEqual(expect.arrayContaining(["rackhand.payload=http://10.77.0.1:3000/boot/ramdisk/agent.cpio.zst", `rackhand.payload_sha256=${sha}`]));
    const tree = machineTree(row({ state: "deploying" }), withPayload);
    for (const f of ["tftp/ipxe/52-54-00-aa-bb-07.ipxe", "tftp/grub/grub.cfg-01-52-54-00-aa-bb-07", "tftp/pxelinux.cfg/01-52-54-00-aa-bb-07"]) {
      expect(tree.get(f)).toContain(`rackhand.payload_sha256=${sha}`);
    }
    // A RAM disk built whole (no payload in its manifest): no payload arguments.
    const whole = bootTarget(row({ state: "deploying" }), ctx);
    expect(whole.kind === "netboot" && whole.args.some((a) => a.startsWith("rackhand.payload"))).toBe(false);
    // The Debian agent environment's root file system has its own Node.js and agent: no payload.
    const debian = bootTarget(row({ state: "deploying" }), { ...withPayload, settings: { ...settings, agentEnvironment: "debian" } });
    expect(debian.kind === "netboot" && debian.args.some((a) => a.startsWith("rackhand.payload"))).toBe(false);
    // Deployed machines boot from disk: nothing of the RAM disk.
    expect(bootTarget(row({ state: "deployed" }), withPayload).kind).toBe("local");
    // The manifest is a file on disk: its values are checked before they reach a kernel command line.
    const badFiles = ["../etc/passwd", "a b", "x\nrackhand.shell=1", "agent.cpio.zst;reboot", "$(id)", "a&b", "é.zst", "x".repeat(65), ""];
    for (const file of badFiles) {
      expect(() => bootTarget(row({ state: "deploying" }), { ...ctx, agentPayload: { file, sha256: sha } }), file).toThrow(/agent payload file/);
    }
    for (const sha256 of ["", sha.toUpperCase(), sha.slice(1), `${sha}0`, `${sha.slice(0, 63)}g`, `${sha.slice(0, 60)} rackhand.shell=1`]) {
      expect(() => bootTarget(row({ state: "deploying" }), { ...ctx, agentPayload: { file: "agent.cpio.zst", sha256 } }), sha256).toThrow(/agent payload sha256/);
    }
  });

  it("boots an installer profile's kernel with the per-machine install file URLs", () => {
    for (const template of ["preseed", "autoinstall", "kickstart"] as const) {
      const t = machineTree(row({ state: "deploying", sessionId: 41, profile: { ...preseedProfile, template } }), ctx);
      expectGolden(GOLDEN, `installer-${template}.ipxe`, t.get("tftp/ipxe/52-54-00-aa-bb-07.ipxe")!);
      expectGolden(GOLDEN, `installer-${template}.grub`, t.get("tftp/grub/grub.cfg-01-52-54-00-aa-bb-07")!);
    }
    expectGolden(GOLDEN, "installer-preseed.pxelinux", machineTree(row({ state: "deploying", sessionId: 41, profile: preseedProfile }), ctx).get("tftp/pxelinux.cfg/01-52-54-00-aa-bb-07")!);
  });

  it("always answers d-i's critical name-server question on the command line (a real d-i stopped there without it)", () => {
    const args = (s: typeof settings) => {
      const t = bootTarget(row({ state: "deploying", sessionId: 41, profile: preseedProfile }), { ...ctx, settings: s });
      return t.kind === "netboot" ? t.args.filter((a) => a.startsWith("netcfg/get_nameservers=") || a.startsWith("netcfg/get_gateway=")) : [];
    };
    expect(args(settings)).toEqual(["netcfg/get_gateway=10.77.0.254", "netcfg/get_nameservers=10.77.0.53"]);
    // No DNS server configured: the provisioning server's address (dnsmasq's DNS when its port is on).
    expect(args({ ...settings, dnsServers: [] })).toEqual(["netcfg/get_gateway=10.77.0.254", "netcfg/get_nameservers=10.77.0.1"]);
    expect(args({ ...settings, dnsServers: [], gateway: null })).toEqual(["netcfg/get_nameservers=10.77.0.1"]);
  });

  it("gives unknown MACs the local-boot defaults and iPXE a per-MAC chain", () => {
    const t = baseTree(ctx);
    expectGolden(GOLDEN, "boot.ipxe", t.get("tftp/boot.ipxe")!);
    expect(t.get("tftp/ipxe/default.ipxe")).toContain("exit");
    expect(t.get("tftp/pxelinux.cfg/default")).toContain("LOCALBOOT 0");
    expect(t.get("tftp/grub/grub.cfg")).toContain("exit");
  });

  it("puts every NIC's host line in the one dhcp-hostsfile and boot entries only for netbooting machines", () => {
    const rows = [
      row({ id: 1, name: "node-1", nics: [{ mac: "52:54:00:00:00:01", ip: "10.77.0.11", isBoot: true }] }),
      row({ id: 2, name: "node-2", state: "inspecting", sessionId: 5, nics: [{ mac: "52:54:00:00:00:02", ip: null, isBoot: true }, { mac: "52:54:00:00:01:02", ip: null, isBoot: false }] }),
    ];
    const { tree, owners, hosts } = desiredTree(rows, ctx);
    expect(tree.get("hosts")).toBe("52:54:00:00:00:01,10.77.0.11,node-1\n52:54:00:00:00:02,node-2\n52:54:00:00:01:02\n");
    expect([...tree.keys()].filter((k) => k.startsWith("hosts.d/"))).toEqual([]);
    expect([...hosts.keys()]).toEqual(["52-54-00-00-00-01", "52-54-00-00-00-02", "52-54-00-00-01-02"]);
    expect(owners.get(1)).toEqual(["hosts.d/52-54-00-00-00-01"]);
    expect(owners.get(2)).toHaveLength(8);
    expect([...tree.keys()].filter((k) => /01-52-54-00-00-00-01|52-54-00-00-00-01\.ipxe/.test(k))).toEqual([]);
    expect(tree.get("tftp/ipxe/52-54-00-00-01-02.ipxe")).toContain("rackhand.mode=inspecting");
    expect(baseTree(ctx).get("dnsmasq.conf")).toContain("\ndhcp-hostsfile=/srv/rh/netboot/hosts\ndhcp-hostsdir=/srv/rh/netboot/hosts.d\n".replace("\ndhcp-hostsdir", "\n# One file per NIC; new files are read via inotify, deletions and changes need SIGHUP.\ndhcp-hostsdir"));
  });
});

describe("netboot safety: every value is validated before anything is written", () => {
  const refused = (r: MachineBootRow) => {
    try {
      desiredTree([row({ id: 1, name: "ok-1", nics: [{ mac: "52:54:00:00:00:01", ip: null, isBoot: true }] }), r], ctx);
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe("VALIDATION");
      return (err as AppError).message;
    }
    throw new Error("not refused");
  };

  it.each([
    ["traversal", "../../etc/passwd"],
    ["slash", "a/b"],
    ["NUL", "node\u0000x"],
    ["newline", "node\nLABEL evil"],
    ["double quote", 'node"x'],
    ["single quote", "node'x"],
    ["space", "node x"],
  ])("refuses a host name with %s", (_what, name) => {
    expect(refused(row({ name }))).toMatch(/name/);
  });

  it.each([
    ["newline adding a pxelinux/iPXE directive", "quiet\nkernel http://evil/vmlinuz"],
    ["carriage return", "quiet\rboot"],
    ["GRUB command separator", "quiet; reboot"],
    ["iPXE variable", "x=${net0/ip}"],
    ["quote", 'console="ttyS0"'],
    ["NUL", "quiet\u0000"],
  ])("refuses kernel arguments with %s", (_what, kernelArgs) => {
    expect(refused(row({ state: "deploying", sessionId: 1, profile: { ...preseedProfile, kernelArgs } }))).toMatch(/kernel arguments/);
  });

  it.each(["../../../etc/shadow", "/etc/passwd", "debian/../../x", "a\nb", "a b", "a\u0000b"])("refuses kernel path %j", (kernel) => {
    expect(refused(row({ state: "deploying", sessionId: 1, profile: { ...preseedProfile, kernel } }))).toMatch(/kernel/);
  });

  it.each(["52:54:00:AA:BB:07", "../52:54:00:aa:bb:07", "52:54:00:aa:bb:07\n", "01:00:5e:00:00:01"])("refuses MAC %j", (mac) => {
    expect(refused(row({ nics: [{ mac, ip: null, isBoot: true }] }))).toMatch(/MAC/);
  });

  it("refuses an IP that is not a dotted quad", () => {
    expect(refused(row({ nics: [{ mac: "52:54:00:aa:bb:07", ip: "10.0.0.1\ndhcp-boot=evil", isBoot: true }] }))).toMatch(/IP/);
  });

  it("refuses settings that would inject dnsmasq lines or paths", () => {
    for (const bad of [
      { interface: "eth0\ndhcp-script=/tmp/x" },
      { interface: "../eth0" },
      { serverAddress: "10.0.0.1\nconf-file=/etc/x" },
      { domain: "lab\nenable-tftp" },
      { httpBaseUrl: "http://10.0.0.1/ x" },
      { httpBaseUrl: "http://10.0.0.1/\"" },
      { dnsServers: ["8.8.8.8,evil"] },
      { rangeStart: "10.0.1.10", rangeEnd: "10.0.1.20" },
    ]) {
      expect(netbootSettingsSchema.safeParse({ ...settings, ...bad }).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it("keeps the generated installer arguments within the validated character set", () => {
    const t = bootTarget(row({ state: "deploying", sessionId: 9, profile: preseedProfile }), ctx);
    expect(t.kind).toBe("netboot");
    if (t.kind === "netboot") for (const a of t.args) expect(a).toMatch(/^[A-Za-z0-9._,:=/+@%;-]+$/);
  });
});
