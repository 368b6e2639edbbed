import type { MachineNetworkInput } from "../../lib/net-model";

/**
 * The network matrix every format is rendered and checked for (golden files in server/netboot/golden/templates/
 * matrix/, real-tool checks in server/netboot/templates/net-config.int.test.ts): single static, DHCP, bond + VLAN,
 * MTU 9000, IPv6 static, dual-stack, SLAAC and DHCPv6.
 */
const mac = (n: number) => `52:54:00:14:00:0${n}`;
export const NET_MATRIX: Record<string, MachineNetworkInput> = {
  static: {
    interfaces: [{ kind: "ethernet", name: "eno1", mac: mac(1), mode: "static", ipv4: "10.77.0.51/24", gateway4: "10.77.0.254" }],
    dns: ["10.77.0.53"],
    search: ["lab.example"],
  },
  dhcp: { interfaces: [{ kind: "ethernet", name: "eno1", mac: mac(1), mode: "dhcp" }], dns: [], search: [] },
  "bond-vlan": {
    interfaces: [
      { kind: "ethernet", name: "eno1", mac: mac(1), mode: "none" },
      { kind: "ethernet", name: "eno2", mac: mac(2), mode: "none" },
      { kind: "bond", name: "bond0", members: ["eno1", "eno2"], bondMode: "active-backup", miimon: 100, mode: "none" },
      {
        kind: "vlan",
        name: "bond0.120",
        parent: "bond0",
        vlanId: 120,
        mode: "static",
        ipv4: "192.168.120.51/24",
        gateway4: "192.168.120.1",
        ipv6Mode: "static",
        ipv6: "2001:db8:120::51/64",
        gateway6: "2001:db8:120::1",
      },
    ],
    dns: ["10.77.0.53", "2001:db8::53"],
    search: ["lab.example"],
  },
  "lacp-mtu9000": {
    interfaces: [
      { kind: "ethernet", name: "eno1", mac: mac(1), mode: "none", mtu: 9000 },
      { kind: "ethernet", name: "eno2", mac: mac(2), mode: "none", mtu: 9000 },
      { kind: "bond", name: "bond0", members: ["eno1", "eno2"], bondMode: "802.3ad", lacpRate: "fast", xmitHashPolicy: "layer3+4", mtu: 9000, mode: "static", ipv4: "10.78.0.51/24" },
      { kind: "vlan", name: "vlan200", parent: "bond0", vlanId: 200, mtu: 9000, mode: "dhcp" },
    ],
    dns: ["10.77.0.53"],
    search: [],
  },
  "ipv6-static": {
    interfaces: [{ kind: "ethernet", name: "eno1", mac: mac(1), mode: "none", ipv6Mode: "static", ipv6: "2001:db8:77::51/64", gateway6: "2001:db8:77::1", dns: ["2001:db8::53"] }],
    dns: [],
    search: ["lab.example"],
  },
  "dual-stack": {
    interfaces: [
      { kind: "ethernet", name: "eno1", mac: mac(1), mode: "static", ipv4: "10.77.0.51/24", gateway4: "10.77.0.254", ipv6Mode: "static", ipv6: "2001:db8:77::51/64", gateway6: "fe80::1", mtu: 1500 },
    ],
    dns: ["10.77.0.53", "2001:db8::53"],
    search: ["lab.example"],
  },
  slaac: { interfaces: [{ kind: "ethernet", name: "eno1", mac: mac(1), mode: "dhcp", ipv6Mode: "slaac" }], dns: [], search: [] },
  dhcpv6: { interfaces: [{ kind: "ethernet", name: "eno1", mac: mac(1), mode: "none", ipv6Mode: "dhcp" }], dns: [], search: [] },
};
