import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MachineNetworkInput } from "../../lib/net-model";
import { events, ipAllocations, machines, nicLinks, nics } from "../db/schema";
import { expectTrpcError, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";

let h: Harness;
let v4 = 0;
let v6 = 0;
let mid = 0;
const BOOT = "52:54:00:aa:00:01";
const snapshot = () => ({
  nics: h.db.select().from(nics).where(eq(nics.machineId, mid)).all(),
  links: h.db.select().from(nicLinks).where(eq(nicLinks.machineId, mid)).all(),
  allocs: h.db.select().from(ipAllocations).where(eq(ipAllocations.machineId, mid)).all(),
});

const bonded = (over: Partial<Record<string, unknown>> = {}): MachineNetworkInput => ({
  interfaces: [
    { kind: "ethernet", name: "eno1", mac: BOOT, mode: "none", mtu: 9000 },
    { kind: "ethernet", name: "eno2", mac: "52:54:00:aa:00:02", mode: "none", mtu: 9000 },
    { kind: "bond", name: "bond0", members: ["eno1", "eno2"], bondMode: "802.3ad", miimon: 100, lacpRate: "fast", xmitHashPolicy: "layer3+4", mode: "auto", subnetId: v4, mtu: 9000 },
    { kind: "vlan", name: "bond0.42", parent: "bond0", vlanId: 42, mode: "dhcp", ipv6Mode: "static", subnet6Id: v6, ipv6: "2001:db8:77::50/64", ...over },
  ],
  dns: [],
  search: [],
});

beforeAll(async () => {
  h = createHarness();
  ({ id: v4 } = await h.admin.subnets.create({ name: "edit-v4", cidr: "10.77.8.0/24", gateway: "10.77.8.1", reserved: [{ start: "10.77.8.2", end: "10.77.8.19" }] }));
  ({ id: v6 } = await h.admin.subnets.create({ name: "edit-v6", cidr: "2001:db8:77::/64", gateway: "2001:db8:77::1" }));
  ({ id: mid } = await h.operator.machines.enroll(machineInput(700, { bootMac: BOOT, ip: "10.99.0.7" })));
});
afterAll(() => h.close());

describe("machines.setNetwork", () => {
  it("stores NICs, a bond and a VLAN, allocates auto and pins static, and reads them back", async () => {
    await h.operator.machines.setNetwork({ id: mid, network: bonded() });
    const got = await h.viewer.machines.network({ id: mid });
    expect(got.bootMac).toBe(BOOT);
    const byName = Object.fromEntries(got.network.interfaces.map((i) => [i.name, i]));
    expect(byName.eno2).toMatchObject({ kind: "ethernet", master: "bond0", mtu: 9000 });
    expect(byName.bond0).toMatchObject({ kind: "bond", bondMode: "802.3ad", lacpRate: "fast", xmitHashPolicy: "layer3+4", mode: "auto", ipv4: "10.77.8.20/24", gateway4: "10.77.8.1", subnetId: v4 });
    expect(byName["bond0.42"]).toMatchObject({ kind: "vlan", parent: "bond0", vlanId: 42, ipv6Mode: "static", ipv6: "2001:db8:77::50/64", gateway6: "2001:db8:77::1" });
    expect(snapshot().allocs.map((a) => [a.address, a.mode]).sort()).toEqual([["10.77.8.20", "auto"], ["2001:db8:77::50", "static"]]);
    // The boot NIC keeps its DHCP reservation (mode none on a bond member).
    expect(snapshot().nics.find((n) => n.mac === BOOT)!.ip).toBe("10.99.0.7");
    expect(h.db.select().from(events).where(eq(events.kind, "machine.network")).all().at(-1)!.message).toMatch(/4 interface\(s\): eno1, eno2, bond0, bond0.42/);
  });

  it("keeps auto addresses across edits, and frees what is removed", async () => {
    await h.operator.machines.enroll(machineInput(701, { ip: null, network: { subnetId: v4 } })); // takes .21
    await h.operator.machines.setNetwork({ id: mid, network: bonded({ mtu: 1500 }) });
    expect(snapshot().allocs.map((a) => a.address).sort()).toEqual(["10.77.8.20", "2001:db8:77::50"]);
    await h.operator.machines.setNetwork({ id: mid, network: { interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "dhcp" }] } });
    const s = snapshot();
    expect(s.allocs).toEqual([]);
    expect(s.links).toEqual([]);
    expect(s.nics.map((n) => [n.mac, n.ifname, n.ip])).toEqual([[BOOT, "eno1", "10.99.0.7"]]);
  });

  it("is all or nothing: a pinned address another machine holds fails the whole edit, naming the holder", async () => {
    await h.operator.machines.setNetwork({ id: mid, network: bonded() });
    const before = snapshot();
    const { id: other } = await h.operator.machines.enroll(machineInput(702, { ip: null }));
    await h.operator.machines.setNetwork({ id: other, network: { interfaces: [{ kind: "ethernet", name: "eth0", mac: "52:54:00:00:02:be", mode: "static", subnetId: v4, ipv4: "10.77.8.99/24" }] } });
    const { error } = await expectTrpcError(
      h.operator.machines.setNetwork({ id: mid, network: { interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "static", subnetId: v4, ipv4: "10.77.8.99/24" }] } }),
      "CONFLICT",
    );
    expect(error.message).toMatch(/eno1: 10.77.8.99 in subnet edit-v4 is already held by node-702 \(eth0\)/);
    expect(snapshot()).toEqual(before);
  });

  it("moves the boot NIC's allocated address onto a bond: released by the NIC, allocated again to the bond", async () => {
    const { id } = await h.operator.machines.enroll(machineInput(703, { bootMac: "52:54:00:aa:07:03", ip: null, network: { ifname: "eno1", subnetId: v4 } }));
    const first = h.db.select().from(nics).where(eq(nics.machineId, id)).get()!.ip!;
    await h.operator.machines.setNetwork({
      id,
      network: {
        interfaces: [
          { kind: "ethernet", name: "eno1", mac: "52:54:00:aa:07:03", mode: "none" },
          { kind: "bond", name: "bond0", members: ["eno1"], mode: "auto", subnetId: v4 },
        ],
      },
    });
    const allocs = h.db.select().from(ipAllocations).where(eq(ipAllocations.machineId, id)).all();
    expect(allocs.map((a) => [a.address, a.linkId !== null])).toEqual([[first, true]]);
    expect(h.db.select().from(nics).where(eq(nics.machineId, id)).get()!.ip).toBeNull();
  });

  it("refuses edits while the machine is deploying, with a clear message", async () => {
    h.db.update(machines).set({ state: "deploying" }).where(eq(machines.id, mid)).run();
    const before = snapshot();
    const { error } = await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: bonded({ mtu: 1400 }) }), "CONFLICT", "MACHINE_BUSY");
    expect(error.message).toMatch(/node-700 is deploying: its network cannot change until that finishes/);
    expect(snapshot()).toEqual(before);
    h.db.update(machines).set({ state: "available" }).where(eq(machines.id, mid)).run();
  });

  it("refuses auto without a subnet, a NIC without a MAC, and a subnet of the wrong family", async () => {
    for (const [iface, msg] of [
      [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "auto" }, /auto needs a subnet/],
      [{ kind: "ethernet", name: "eno1", mode: "dhcp" }, /needs its MAC/],
      [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "auto", subnetId: v6 }, /IPv6 subnet/],
      [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "static", subnetId: v4, ipv4: "10.77.8.30/16" }, /prefix \/16; subnet edit-v4 is 10.77.8.0\/24/],
      [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "static", subnetId: v4, ipv4: "10.77.8.5/24" }, /reserved range/],
    ] as const) {
      const { error } = await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: { interfaces: [iface] } }), "BAD_REQUEST");
      expect(error.message).toMatch(msg);
    }
  });

  // Every new field with hostile values: refused at the boundary by the one schema, nothing written.
  const HOSTILE = ["a\nb", "a\rb", "a\u0000b", "a\\b", 'a"b', "a'b", "$(reboot)", "a;b", "a&b", "..", "auto", "iface", "x".repeat(300), "nœud", "lo"];
  const FIELDS: [string, (v: string) => Record<string, unknown>][] = [
    ["name", (v) => ({ interfaces: [{ kind: "ethernet", name: v, mac: BOOT, mode: "dhcp" }] })],
    ["mac", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: v, mode: "dhcp" }] })],
    ["ipv4", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "static", ipv4: v }] })],
    ["gateway4", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "static", ipv4: "10.0.0.5/24", gateway4: v }] })],
    ["ipv6", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "dhcp", ipv6Mode: "static", ipv6: v }] })],
    ["dns", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "dhcp", dns: [v] }] })],
    ["mode", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: v }] })],
    ["bondMode", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: v }] })],
    ["lacpRate", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: "802.3ad", lacpRate: v }] })],
    ["xmitHashPolicy", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "none" }, { kind: "bond", name: "bond0", members: ["eno1"], bondMode: "802.3ad", xmitHashPolicy: v }] })],
    ["members", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "none" }, { kind: "bond", name: "bond0", members: [v] }] })],
    ["parent", (v) => ({ interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT }, { kind: "vlan", name: "v5", parent: v, vlanId: 5 }] })],
  ];
  it.each(FIELDS)("refuses hostile values in %s, writing nothing", async (_f, make) => {
    const before = snapshot();
    for (const v of HOSTILE) {
      const { error } = await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: make(v) as never }), "BAD_REQUEST");
      expect(error.message.length, v).toBeGreaterThan(10);
    }
    for (const bad of [0, -1, 4095, 1.5, Number.NaN]) {
      await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: { interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mtu: bad * 100000 }] } as never }), "BAD_REQUEST");
      await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: { interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT }, { kind: "vlan", name: "v", parent: "eno1", vlanId: bad }] } as never }), "BAD_REQUEST");
    }
    await expectTrpcError(h.operator.machines.setNetwork({ id: mid, network: { interfaces: [{ kind: "ethernet", name: "eno1", mac: BOOT, mode: "auto", subnetId: "$(x)" }] } as never }), "BAD_REQUEST");
    expect(snapshot()).toEqual(before);
  });
});
