import { describe, expect, it } from "vitest";
import { BOND_MODES, isIPv6, machineIfnameSchema, machineNetworkSchema, sameSubnet, type MachineNetworkInput } from "./net-model";

const ok = (net: MachineNetworkInput) => {
  const r = machineNetworkSchema.safeParse(net);
  expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
  return r.data!;
};
const issues = (net: MachineNetworkInput) => {
  const r = machineNetworkSchema.safeParse(net);
  expect(r.success).toBe(false);
  return r.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

const bondVlan: MachineNetworkInput = {
  interfaces: [
    { kind: "ethernet", name: "eno1", mac: "52:54:00:AA:00:01", mode: "none" },
    { kind: "ethernet", name: "eno2", mac: "52-54-00-aa-00-02", mode: "none" },
    { kind: "bond", name: "bond0", members: ["eno1", "eno2"], bondMode: "802.3ad", lacpRate: "fast", xmitHashPolicy: "layer3+4", mtu: 9000 },
    { kind: "vlan", name: "bond0.120", parent: "bond0", vlanId: 120, mode: "static", ipv4: "10.1.20.5/24", gateway4: "10.1.20.1", ipv6Mode: "static", ipv6: "2001:DB8:120::5/64", gateway6: "fe80::1", mtu: 9000 },
  ],
  dns: ["10.1.0.53", "2001:db8::53"],
  search: ["lab.example"],
};

describe("machine network schema", () => {
  it("accepts NICs, a bond with its options and a dual-stack VLAN, normalising MACs and IPv6 case and adding master", () => {
    const n = ok(bondVlan);
    expect(n.interfaces.map((i) => [i.name, i.master])).toEqual([
      ["eno1", "bond0"],
      ["eno2", "bond0"],
      ["bond0", null],
      ["bond0.120", null],
    ]);
    expect(n.interfaces[1]).toMatchObject({ mac: "52:54:00:aa:00:02", mode: "none", ipv6Mode: "none", dns: [] });
    expect(n.interfaces[2]).toMatchObject({ bondMode: "802.3ad", miimon: 100, mode: "dhcp" });
    expect(n.interfaces[3]).toMatchObject({ ipv6: "2001:db8:120::5/64" });
    // Parsing the output again gives the same (every renderer re-validates what it is handed).
    expect(machineNetworkSchema.parse(n)).toEqual(n);
  });

  it("has exactly the kernel's seven bonding modes by name", () => {
    expect([...BOND_MODES].sort()).toEqual(["802.3ad", "active-backup", "balance-alb", "balance-rr", "balance-tlb", "balance-xor", "broadcast"]);
    const bond = (bondMode: string) => ({ interfaces: [{ kind: "ethernet", name: "eno1" , mode: "none"}, { kind: "bond", name: "bond0", members: ["eno1"], bondMode }] }) as MachineNetworkInput;
    for (const m of BOND_MODES) ok(bond(m));
    for (const bad of ["1", "802.3ad miimon=1 arp_interval=5", "active-backup\nmode=0", "LACP", ""]) expect(issues(bond(bad)).join()).toMatch(/interfaces.1.bondMode: Bond mode is one of/);
  });

  it("refuses lo, reserved and ifupdown keywords, over-long, '/', ':', whitespace and non-ASCII interface names", () => {
    for (const bad of ["lo", "all", "default", "bonding_masters", "iface", "auto", "inet6", ".", "..", "", "eth/0", "eth:0", "eth 0", "eth0\n", "ẞond0", "a".repeat(16), "123", "-eth0"]) {
      expect(machineIfnameSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    for (const good of ["eno1", "enp3s0f1", "bond0.120", "br-lan", "ETH_0", "a".repeat(15)]) expect(machineIfnameSchema.safeParse(good).success, good).toBe(true);
    expect(issues({ interfaces: [{ kind: "ethernet", name: "lo", mode: "static", ipv4: "127.0.0.2/8" }] }).join()).toMatch(/interfaces.0.name: "lo" is reserved/);
  });

  it("checks the references between interfaces", () => {
    const e = (name: string, extra: object = {}) => ({ kind: "ethernet" as const, name, mode: "none" as const, ...extra });
    expect(issues({ interfaces: [e("eno1"), e("eno1")] }).join()).toMatch(/Interface name eno1 is used twice/);
    expect(issues({ interfaces: [e("eno1", { mac: "52:54:00:00:00:01" }), e("eno2", { mac: "52:54:00:00:00:01" })] }).join()).toMatch(/MAC .* is already eno1's/);
    expect(issues({ interfaces: [{ kind: "bond", name: "bond0", members: ["eno9"] }] }).join()).toMatch(/member eno9 is not a NIC/);
    expect(
      issues({ interfaces: [e("eno1"), { kind: "bond", name: "bond0", members: ["eno1"] }, { kind: "bond", name: "bond1", members: ["eno1"] }] }).join(),
    ).toMatch(/eno1 is already a member of bond0/);
    expect(issues({ interfaces: [e("eno1"), { kind: "bond", name: "bond0", members: ["eno1"], bondMode: "active-backup", lacpRate: "fast" }] }).join()).toMatch(/LACP rate applies to mode 802.3ad only/);
    expect(issues({ interfaces: [e("eno1", { mode: "static", ipv4: "10.0.0.5/24" }), { kind: "bond", name: "bond0", members: ["eno1"] }] }).join()).toMatch(/member of bond bond0: its addressing belongs on the bond/);
    expect(issues({ interfaces: [{ kind: "vlan", name: "v1", parent: "eno1", vlanId: 5 }] }).join()).toMatch(/parent eno1 is not an interface/);
    expect(issues({ interfaces: [e("eno1"), { kind: "vlan", name: "v1", parent: "eno1", vlanId: 5 }, { kind: "vlan", name: "v2", parent: "v1", vlanId: 6 }] }).join()).toMatch(/parent v1 is itself a VLAN/);
    expect(issues({ interfaces: [e("eno1"), { kind: "vlan", name: "v1", parent: "eno1", vlanId: 5 }, { kind: "vlan", name: "v2", parent: "eno1", vlanId: 5 }] }).join()).toMatch(/VLAN 5 is on eno1 twice/);
    expect(issues({ interfaces: [e("eno1"), { kind: "vlan", name: "v1", parent: "eno1", vlanId: 5, mtu: 9000 }] }).join()).toMatch(/MTU 9000 is larger than its parent eno1's \(1500\)/);
    for (const id of [0, 4095, 1.5]) expect(issues({ interfaces: [e("eno1"), { kind: "vlan", name: "v1", parent: "eno1", vlanId: id }] }).join()).toMatch(/vlanId/);
  });

  it("checks addressing: modes against addresses, gateways inside their subnet, MTU 68-9216 (1280 with IPv6)", () => {
    const one = (x: object) => ({ interfaces: [{ kind: "ethernet" as const, name: "eno1", ...x }] }) as MachineNetworkInput;
    expect(issues(one({ mode: "static" })).join()).toMatch(/static IPv4 address mode needs an address/);
    expect(issues(one({ mode: "dhcp", ipv4: "10.0.0.5/24" })).join()).toMatch(/IPv4 mode is dhcp/);
    expect(issues(one({ mode: "static", ipv4: "10.0.0.5/24", gateway4: "10.0.1.1" })).join()).toMatch(/gateway 10.0.1.1 is not in 10.0.0.5\/24/);
    expect(issues(one({ mode: "static", ipv4: "10.0.0.5/24", gateway4: "10.0.0.5" })).join()).toMatch(/the gateway is the interface's own address/);
    expect(issues(one({ ipv6Mode: "static", ipv6: "2001:db8::5/64", gateway6: "2001:db9::1" })).join()).toMatch(/neither link-local nor in/);
    expect(issues(one({ ipv6Mode: "slaac", ipv6: "2001:db8::5/64" })).join()).toMatch(/IPv6 mode is slaac/);
    ok(one({ ipv6Mode: "static", ipv6: "2001:db8::5/64", gateway6: "2001:db8::1" }));
    ok(one({ mode: "auto", subnetId: 3 })); // not allocated yet: valid to store, refused by the renderers
    for (const mtu of [67, 9217, 1500.5]) expect(issues(one({ mtu })).join()).toMatch(/mtu/);
    ok(one({ mtu: 68 }));
    ok(one({ mtu: 9216 }));
    expect(issues(one({ mtu: 1000, ipv6Mode: "slaac" })).join()).toMatch(/IPv6 needs an MTU of at least 1280/);
    for (const [field, bad] of [
      ["ipv4", "10.0.0.5"],
      ["ipv4", "10.0.0.5/33"],
      ["ipv4", "010.0.0.5/24"],
      ["ipv6", "2001:db8::5"],
      ["ipv6", "2001:db8::5/129"],
      ["ipv6", "fe80::1%eth0/64"],
      ["gateway4", "2001:db8::1"],
      ["gateway6", "10.0.0.1"],
    ] as const) {
      expect(issues(one({ [field]: bad })).join(), `${field}=${bad}`).toMatch(new RegExp(`interfaces.0.${field}`));
    }
  });

  it("parses IPv6 text forms and subnets", () => {
    for (const good of ["::", "::1", "2001:db8::", "2001:db8:0:0:0:0:0:1", "fe80::1", "::ffff:10.0.0.1", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:7::"]) expect(isIPv6(good), good).toBe(true);
    for (const bad of ["", ":", ":::", "2001:db8::1::2", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1:2:3:4:5:6:7:8::", "::ffff:10.0.0.256", "fe80::1%eth0", "2001:db8::/64"]) expect(isIPv6(bad), bad).toBe(false);
    expect(sameSubnet("2001:db8:1::5", "2001:db8:1::ffff", 64)).toBe(true);
    expect(sameSubnet("2001:db8:1::5", "2001:db8:2::5", 64)).toBe(false);
    expect(sameSubnet("2001:db8:1::5", "2001:db8:1:0:8000::", 65)).toBe(false);
    expect(sameSubnet("10.0.0.5", "10.0.0.200", 24)).toBe(true);
    expect(sameSubnet("10.0.0.5", "2001:db8::1", 24)).toBe(false);
  });
});

/**
 * Hostile values in every field that reaches a rendered file: each is refused by the schema, with the field named.
 * (The renderers parse their input with the same schema, so what is refused here never reaches a file.)
 */
describe("hostile input in the network model", () => {
  const HOSTILE = [
    "eno1\nauto lo",
    "eno1\r",
    "eno1\u0000",
    "eno1\\",
    'eno1"',
    "eno1'",
    "$(reboot)",
    "`reboot`",
    "eno1;reboot",
    "eno1&x",
    "..",
    "../../etc/passwd",
    "iface",
    "mode=0 arp_interval=5",
    "[ipv4]",
    "a".repeat(5000),
    "ëno1",
    "eno1\u2028",
  ];
  const FIELDS: [string, (v: string) => MachineNetworkInput][] = [
    ["interfaces.0.name", (v) => ({ interfaces: [{ kind: "ethernet", name: v }] })],
    ["interfaces.0.mac", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: v }] })],
    ["interfaces.0.ipv4", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "static", ipv4: `10.0.0.5/24${v}` }] })],
    ["interfaces.0.gateway4", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "static", ipv4: "10.0.0.5/24", gateway4: `10.0.0.1${v}` }] })],
    ["interfaces.0.ipv6", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", ipv6Mode: "static", ipv6: `2001:db8::5/64${v}` }] })],
    ["interfaces.0.gateway6", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", ipv6Mode: "static", ipv6: "2001:db8::5/64", gateway6: `2001:db8::1${v}` }] })],
    ["interfaces.0.dns.0", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", dns: [`10.0.0.53${v}`] }] })],
    ["interfaces.0.mode", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: v as "dhcp" }] })],
    ["interfaces.0.ipv6Mode", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", ipv6Mode: v as "dhcp" }] })],
    ["interfaces.1.members.0", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "none" }, { kind: "bond", name: "bond0", members: [v] }] })],
    ["interfaces.1.bondMode", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: v as "802.3ad" }] })],
    ["interfaces.1.lacpRate", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: "802.3ad", lacpRate: v as "fast" }] })],
    ["interfaces.1.xmitHashPolicy", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: "802.3ad", xmitHashPolicy: v as "layer2" }] })],
    ["interfaces.1.parent", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1" }, { kind: "vlan", name: "v10", parent: v, vlanId: 10 }] })],
    ["dns.0", (v) => ({ interfaces: [], dns: [`10.0.0.53${v}`] })],
    ["search.0", (v) => ({ interfaces: [], search: [`lab.example${v}`] })],
  ];
  it.each(FIELDS)("refuses every hostile value in %s, naming the field", (field, make) => {
    for (const v of HOSTILE) {
      // "lab.exampleiface" is a valid domain: the keyword is only a suffix of one label, contained in its field.
      if (field === "search.0" && v === "iface") continue;
      const r = machineNetworkSchema.safeParse(make(v));
      expect(r.success, `${field} = ${JSON.stringify(v.slice(0, 40))}`).toBe(false);
      expect(r.error!.issues.map((i) => i.path.join(".")), `${field} = ${JSON.stringify(v.slice(0, 40))}`).toContain(field);
    }
  });

  it("refuses numbers out of range or of the wrong type where text is expected", () => {
    const r = machineNetworkSchema.safeParse({ interfaces: [{ kind: "ethernet", name: "eno1", mtu: "9000; reboot" }] });
    expect(r.error!.issues[0]!.path.join(".")).toBe("interfaces.0.mtu");
    const k = machineNetworkSchema.safeParse({ interfaces: [{ kind: "bridge", name: "br0" }] });
    expect(k.error!.issues[0]!.path.join(".")).toBe("interfaces.0.kind");
    expect(machineNetworkSchema.safeParse({ interfaces: Array.from({ length: 65 }, (_, i) => ({ kind: "ethernet", name: `e${i}` })) }).success).toBe(false);
  });
});
