import path from "node:path";
import { describe, expect, it } from "vitest";
import { profileOptionsSchema } from "../../../lib/netboot";
import { expectGolden } from "../../testing/golden";
import { NET_MATRIX } from "../../testing/net-matrix";
import { renderAutoinstallMetaData, renderAutoinstallUserData, renderKickstart, renderPreseed, type InstallContext } from "./install";
import type { MachineNetworkInput } from "../../../lib/net-model";
import { NET_RENDERERS } from "./net-config";

const GOLDEN = path.join(import.meta.dirname, "..", "golden", "templates");

/** Two NICs bonded (LACP), a VLAN on the bond, and a separate static management NIC. */
const bonded: MachineNetworkInput = {
  interfaces: [
    { name: "eno1", kind: "ethernet", mac: "52:54:00:aa:00:01", mode: "static", ipv4: "10.77.0.51/24", gateway4: "10.77.0.254", mtu: 1500 },
    { name: "eno2", kind: "ethernet", mac: "52:54:00:aa:00:02", mode: "none" },
    { name: "eno3", kind: "ethernet", mac: "52:54:00:aa:00:03", mode: "none" },
    { name: "bond0", kind: "bond", members: ["eno2", "eno3"], bondMode: "802.3ad", mtu: 9000 },
    { name: "bond0.120", kind: "vlan", parent: "bond0", vlanId: 120, mode: "static", ipv4: "192.168.120.51/24" },
  ],
  dns: ["10.77.0.53", "10.77.0.54"],
  search: ["lab.example"],
};
const dhcpOnly: MachineNetworkInput = { interfaces: [{ name: "eno1", kind: "ethernet", mac: "52:54:00:aa:00:01" }], dns: [], search: [] };

const ctx = (net: MachineNetworkInput, opts: object = {}): InstallContext => ({
  machineId: 7,
  sessionId: 41,
  hostname: "node-007",
  domain: "lab.example",
  options: profileOptionsSchema.parse({
    mirror: "http://deb.debian.org/debian",
    username: "ops",
    passwordHash: "$6$rounds=4096$salt$hash",
    sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@example"],
    packages: ["curl", "lldpd"],
    disk: "/dev/sda",
    ...opts,
  }),
  net,
  filesUrl: "http://10.77.0.1:3000/boot/m/7/TOKEN",
  doneUrl: "http://10.77.0.1:3000/boot/m/7/TOKEN/done",
});

describe("install templates (golden files)", () => {
  it("renders the Debian/Ubuntu preseed: static network, unmounting active partitions, completion report", () => {
    const p = renderPreseed(ctx(bonded));
    expectGolden(GOLDEN, "preseed.cfg", p);
    expect(p).toContain("d-i partman/unmount_active boolean true");
    expect(p).toMatch(/d-i partman\/early_command string swapoff -a; .*umount -l/);
    expect(p).toContain("--post-data='' 'http://10.77.0.1:3000/boot/m/7/TOKEN/done'");
    expectGolden(GOLDEN, "preseed-dhcp.cfg", renderPreseed(ctx(dhcpOnly, { mirror: null, sshKeys: [], passwordHash: null })));
  });

  it("renders the profile's initramfs drivers as d-i's driver policy (generic → most, targeted → dep)", () => {
    const policy = (p: string) => p.split("\n").filter((l) => l.includes("driver-policy"));
    expect(policy(renderPreseed(ctx(dhcpOnly)))).toEqual(["d-i base-installer/initramfs-tools/driver-policy select most"]);
    expect(policy(renderPreseed(ctx(dhcpOnly, { initramfsDrivers: "generic" })))).toEqual(["d-i base-installer/initramfs-tools/driver-policy select most"]);
    expect(policy(renderPreseed(ctx(dhcpOnly, { initramfsDrivers: "targeted" })))).toEqual(["d-i base-installer/initramfs-tools/driver-policy select dep"]);
    // Only the two policies exist: a value carrying another answer never reaches the file.
    for (const bad of ["dep", "most", "targeted\nd-i preseed/late_command string reboot", "generic; reboot", "TARGETED"]) {
      expect(() => ctx(dhcpOnly, { initramfsDrivers: bad })).toThrow();
    }
  });

  it("renders Ubuntu autoinstall user-data and meta-data", () => {
    expectGolden(GOLDEN, "user-data", renderAutoinstallUserData(ctx(bonded)));
    expectGolden(GOLDEN, "user-data-dhcp", renderAutoinstallUserData(ctx(dhcpOnly)));
    expectGolden(GOLDEN, "meta-data", renderAutoinstallMetaData(ctx(bonded)));
  });

  it("renders the RHEL-family kickstart", () => {
    expectGolden(GOLDEN, "ks.cfg", renderKickstart(ctx(bonded, { mirror: "http://mirror.example/rocky/9/BaseOS/x86_64/os" })));
  });

  it.each(Object.keys(NET_RENDERERS) as (keyof typeof NET_RENDERERS)[])("renders %s NIC configuration with a bond and a VLAN", (format) => {
    for (const f of NET_RENDERERS[format](bonded)) expectGolden(GOLDEN, `${format}/${f.path}`, f.content);
    for (const f of NET_RENDERERS[format](dhcpOnly)) expectGolden(GOLDEN, `${format}-dhcp/${f.path}`, f.content);
  });

  it("escapes per format: a quote stays inside its YAML or shell string, a newline is refused in line formats", () => {
    // The profile schema refuses quotes in keys; the renderers must still be safe on their own.
    expect(profileOptionsSchema.safeParse({ sshKeys: ["ssh-ed25519 AAAA x'y"] }).success).toBe(false);
    const base = ctx(dhcpOnly);
    const evil = { ...base, options: { ...base.options, sshKeys: ["ssh-ed25519 AAAA x'y"] } };
    // The renderers refuse such a key themselves (defence in depth) rather than escape it.
    expect(() => renderAutoinstallUserData(evil)).toThrow(/sshKeys/);
    expect(() => renderPreseed(evil)).toThrow(/sshKeys/);
    expect(() => renderPreseed({ ...ctx(dhcpOnly), hostname: "a\nd-i preseed/late_command string reboot" })).toThrow(/not a host name/);
    expect(() => NET_RENDERERS.ifupdown({ ...bonded, dns: ["1.1.1.1\nup rm -rf /"] })).toThrow(/dns.0: .* is not an IPv4 or IPv6 address/);
  });
});

describe("network matrix (issue 14): IPv4, IPv6 static, SLAAC, DHCPv6, dual-stack, bonds, VLANs and MTU in every format", () => {
  it.each(Object.keys(NET_MATRIX))("%s", (name) => {
    const net = NET_MATRIX[name]!;
    for (const [format, render] of Object.entries(NET_RENDERERS)) for (const f of render(net)) expectGolden(GOLDEN, `matrix/${name}/${format}/${f.path}`, f.content);
    expectGolden(GOLDEN, `matrix/${name}/preseed.cfg`, renderPreseed(ctx(net)));
    expectGolden(GOLDEN, `matrix/${name}/user-data`, renderAutoinstallUserData(ctx(net)));
    expectGolden(GOLDEN, `matrix/${name}/ks.cfg`, renderKickstart(ctx(net)));
  });

  it("d-i gets IPv6 as address/prefix (netcfg reads the CIDR suffix) and the installed system the full ifupdown file", () => {
    const p = renderPreseed(ctx(NET_MATRIX["ipv6-static"]!));
    expect(p).toContain("d-i netcfg/get_ipaddress string 2001:db8:77::51/64\n");
    expect(p).not.toContain("netcfg/get_netmask");
    expect(p).toContain("d-i netcfg/get_gateway string 2001:db8:77::1\n");
    expect(p).toContain("/net/ifupdown/interfaces");
    // Dual-stack: d-i configures IPv4; the IPv6 half comes with the fetched interfaces file.
    const d = renderPreseed(ctx(NET_MATRIX["dual-stack"]!));
    expect(d).toContain("d-i netcfg/get_ipaddress string 10.77.0.51\n");
    expect(d).toContain("/net/ifupdown/interfaces");
    // A plain static IPv4 NIC: d-i's own interfaces file says the same, nothing is fetched.
    expect(renderPreseed(ctx(NET_MATRIX.static!))).not.toContain("/net/ifupdown/interfaces");
    expect(renderKickstart(ctx(NET_MATRIX["dual-stack"]!))).toContain("--ipv6=2001:db8:77::51/64 --ipv6gateway=fe80::1");
    expect(renderKickstart(ctx(NET_MATRIX.slaac!))).toContain("--bootproto=dhcp --ipv6=auto");
    expect(renderKickstart(ctx(NET_MATRIX.dhcpv6!))).toContain("--noipv4 --ipv6=dhcp");
  });
});

describe("every renderer validates its network with the machine network schema (issue 14)", () => {
  const renderers: [string, (net: MachineNetworkInput) => unknown][] = [
    ...Object.entries(NET_RENDERERS).map(([k, r]) => [k, r] as [string, (net: MachineNetworkInput) => unknown]),
    ["preseed", (net) => renderPreseed(ctx(net))],
    ["autoinstall", (net) => renderAutoinstallUserData(ctx(net))],
    ["kickstart", (net) => renderKickstart(ctx(net))],
  ];
  const bad: [string, MachineNetworkInput, RegExp][] = [
    ["bond mode with spaces", { ...bonded, interfaces: bonded.interfaces.map((i) => (i.kind === "bond" ? { ...i, bondMode: "802.3ad arp_interval=1" as "802.3ad" } : i)) }, /interface "bond0" field bondMode: Bond mode is one of/],
    ["lo", { interfaces: [{ kind: "ethernet", name: "lo", mode: "static", ipv4: "127.0.0.2/8" }], dns: [], search: [] }, /interface "lo" field name: "lo" is reserved/],
    ["newline in an address", { interfaces: [{ kind: "ethernet", name: "eno1", mode: "static", ipv4: "10.0.0.5/24\nup reboot" }], dns: [], search: [] }, /field ipv4/],
    ["unallocated auto", { interfaces: [{ kind: "ethernet", name: "eno1", mode: "auto", subnetId: 1 }], dns: [], search: [] }, /automatic address that was not allocated yet/],
  ];
  it.each(renderers)("%s refuses a bad network with the interface and field named", (_, render) => {
    for (const [what, net, expected] of bad) expect(() => render(net), what).toThrow(expected);
  });
});

describe("package proxy in the answer files (issue 17)", () => {
  const proxy = "http://10.77.0.1:3142";
  it("preseed sets mirror/http/proxy, autoinstall proxy:, kickstart url --proxy", () => {
    expect(renderPreseed({ ...ctx(bonded), proxy })).toContain(`d-i mirror/http/proxy string ${proxy}\n`);
    expect(renderPreseed({ ...ctx(dhcpOnly, { mirror: null }), proxy })).toContain(`d-i mirror/http/proxy string ${proxy}\n`);
    expect(renderPreseed(ctx(bonded))).toContain("d-i mirror/http/proxy string\n"); // no proxy: d-i must not ask
    expect(renderAutoinstallUserData({ ...ctx(bonded), proxy })).toContain(`\n  proxy: "${proxy}"\n`);
    expect(renderAutoinstallUserData(ctx(bonded))).not.toContain("proxy:");
    expect(renderKickstart({ ...ctx(bonded, { mirror: "http://mirror.example/rocky/9/BaseOS/x86_64/os" }), proxy })).toContain(`url --url=http://mirror.example/rocky/9/BaseOS/x86_64/os --proxy=${proxy}\n`);
  });

  it("a hostile proxy value never reaches a file: refused by the settings schema, and by the line renderer", async () => {
    const { netbootSettingsSchema } = await import("../../../lib/netboot");
    for (const bad of ["http://x\nd-i preseed/late_command string reboot", "http://x\ry", "http://x\0", "http://x/\\", 'http://x/"', "http://x/'", "http://x/$(reboot)", "http://x/`reboot`", "file:///etc/passwd", "http://x/../ y", "http://é.example/", `http://x/${"a".repeat(3000)}`]) {
      expect(netbootSettingsSchema.safeParse({ proxyMode: "external", proxyUrl: bad }).success, JSON.stringify(bad)).toBe(false);
    }
    expect(netbootSettingsSchema.safeParse({ proxyMode: "external" }).success).toBe(false); // external needs its URL
    expect(() => renderPreseed({ ...ctx(bonded), proxy: "http://x\nd-i preseed/late_command string reboot" })).toThrow();
    // ; and & are URL characters: kept, but inside their YAML string and shell word.
    const odd = "http://10.77.0.1:3142/;reboot&x";
    expect(renderAutoinstallUserData({ ...ctx(bonded), proxy: odd })).toContain(`  proxy: "${odd}"\n`);
    expect(renderKickstart({ ...ctx(bonded), proxy: odd })).toContain(`--proxy='${odd}'\n`);
  });
});

describe("the address machines reach Rackhand's own services on", () => {
  it("is httpBaseUrl's IPv4 host (dnsmasq may run elsewhere), else the server address", async () => {
    const { packageProxyUrl, rackhandAddress } = await import("../../../lib/netboot");
    const s = { proxyMode: "managed" as const, proxyPort: 3142, proxyUrl: null, serverAddress: "10.77.0.2", httpBaseUrl: "http://10.77.0.1:3000" };
    expect(rackhandAddress(s)).toBe("10.77.0.1");
    expect(packageProxyUrl(s)).toBe("http://10.77.0.1:3142");
    expect(packageProxyUrl({ ...s, httpBaseUrl: "http://rackhand.lab:3000" })).toBe("http://10.77.0.2:3142");
    expect(packageProxyUrl({ ...s, proxyMode: "external", proxyUrl: "http://proxy.lab:3128" })).toBe("http://proxy.lab:3128");
    expect(packageProxyUrl({ ...s, proxyMode: "off" })).toBeNull();
  });
});
