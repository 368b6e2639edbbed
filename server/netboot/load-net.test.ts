import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { machines, nicLinks, nics } from "../db/schema";
import { createHarness, type Harness } from "../testing/harness";
import { loadNetModelIn } from "../orchestrator/net-model-read";
import { NET_RENDERERS } from "./templates/net-config";

let h: Harness;
let n = 0;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

/** A machine with a boot NIC (ip 10.30.0.x as its DHCP reservation) and a second NIC, both named. */
function machine(): { id: number; boot: number; second: number } {
  const i = ++n;
  const m = h.db.insert(machines).values({ name: `ln-${i}`, createdAt: new Date(), updatedAt: new Date() }).returning().get();
  const boot = h.db.insert(nics).values({ machineId: m.id, mac: `52:54:00:1e:00:${(2 * i).toString(16).padStart(2, "0")}`, ip: `10.30.0.${i}`, isBoot: true, ifname: "eno1" }).returning().get();
  const second = h.db.insert(nics).values({ machineId: m.id, mac: `52:54:00:1e:00:${(2 * i + 1).toString(16).padStart(2, "0")}`, ifname: "eno2" }).returning().get();
  return { id: m.id, boot: boot.id, second: second.id };
}

async function refusal(id: number): Promise<AppError> {
  try {
    await loadNetModelIn(h.store, h.store.db, id, ["10.30.0.53"], "lab.example");
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    return e as AppError;
  }
  throw new Error("loadNetModelIn accepted a bad row");
}

describe("loadNetModelIn validates what it reads", () => {
  it("reads legacy rows as before: an ip means static (prefix 24), none means DHCP; bond members lose their DHCP reservation", async () => {
    const m = machine();
    const net = await loadNetModelIn(h.store, h.store.db, m.id, ["10.30.0.53"], "lab.example");
    expect(net.interfaces.map((i) => [i.name, i.mode, i.ipv4 ?? null])).toEqual([
      ["eno1", "static", `10.30.0.${n}/24`],
      ["eno2", "dhcp", null],
    ]);
    h.db.insert(nicLinks).values({ machineId: m.id, ifname: "bond0", kind: "bond", members: ["eno1", "eno2"], bondMode: "active-backup", ip: "10.31.0.5", prefix: 24 }).run();
    h.db.insert(nicLinks).values({ machineId: m.id, ifname: "bond0.7", kind: "vlan", parent: "bond0", vlanId: 7, addressMode: "static", ip: "10.32.0.5", prefix: 24, ipv6Mode: "static", ip6: "2001:db8:7::5", prefix6: 64, gateway6: "2001:db8:7::1", dns: JSON.stringify(["2001:db8::53"]) }).run();
    const bonded = await loadNetModelIn(h.store, h.store.db, m.id, ["10.30.0.53"], "lab.example");
    expect(bonded.interfaces.map((i) => [i.name, i.mode, i.ipv4 ?? null, i.master])).toEqual([
      ["eno1", "none", null, "bond0"],
      ["eno2", "none", null, "bond0"],
      ["bond0", "static", "10.31.0.5/24", null],
      ["bond0.7", "static", "10.32.0.5/24", null],
    ]);
    expect(bonded.interfaces[3]).toMatchObject({ ipv6Mode: "static", ipv6: "2001:db8:7::5/64", gateway6: "2001:db8:7::1", dns: ["2001:db8::53"] });
    // "dhcp" with a reservation: the installed OS asks DHCP (and gets the reserved address).
    h.db.delete(nicLinks).where(eq(nicLinks.machineId, m.id)).run();
    h.db.update(nics).set({ addressMode: "dhcp" }).where(eq(nics.id, m.boot)).run();
    expect((await loadNetModelIn(h.store, h.store.db, m.id, [], null)).interfaces[0]).toMatchObject({ mode: "dhcp", ipv4: null });
  });

  it("refuses a bond mode with spaces (BONDING_OPTS injection), naming machine, row and field", async () => {
    const m = machine();
    const link = h.db.insert(nicLinks).values({ machineId: m.id, ifname: "bond0", kind: "bond", members: ["eno1", "eno2"], bondMode: "active-backup arp_interval=100 arp_ip_target=10.0.0.1" }).returning().get();
    const e = await refusal(m.id);
    expect(e.code).toBe("VALIDATION");
    expect(e.message).toContain(`Network of machine "ln-${n}" (#${m.id}) cannot be rendered`);
    expect(e.message).toContain(`nic_links row ${link.id} ("bond0") bondMode: Bond mode is one of`);
    expect(e.details[0]).toMatchObject({ field: `nic_links row ${link.id} ("bond0") bondMode` });
  });

  it("refuses lo as an interface name (no second `iface lo` stanza)", async () => {
    const m = machine();
    h.db.update(nics).set({ ifname: "lo" }).where(eq(nics.id, m.boot)).run();
    expect((await refusal(m.id)).message).toContain(`nics row ${m.boot} ("lo") name: "lo" is reserved`);
  });

  it("refuses hostile values in every column that reaches a file, and malformed JSON, naming the column", async () => {
    const cases: [string, () => void, RegExp][] = [
      ["ifname newline", () => h.db.update(nics).set({ ifname: "eno1\nauto x" }).where(eq(nics.id, last.boot)).run(), /name: Interface names are/],
      ["ip", () => h.db.update(nics).set({ ip: "10.0.0.1; reboot" }).where(eq(nics.id, last.boot)).run(), /ipv4: .* is not an IPv4 address with a prefix/],
      ["gateway", () => h.db.update(nics).set({ gateway: "$(reboot)" }).where(eq(nics.id, last.boot)).run(), /gateway4: .* is not an IPv4 address/],
      ["mtu", () => h.db.update(nics).set({ mtu: 65536 }).where(eq(nics.id, last.boot)).run(), /mtu: MTU is at most 9216/],
      ["address_mode", () => h.db.update(nics).set({ addressMode: "static'" }).where(eq(nics.id, last.boot)).run(), /mode: Address mode is one of/],
      ["ipv6_mode", () => h.db.update(nics).set({ ipv6Mode: "auto\n" }).where(eq(nics.id, last.second)).run(), /ipv6Mode: IPv6 mode is one of/],
      ["ip6", () => h.db.update(nics).set({ ipv6Mode: "static", ip6: "2001:db8::5\\" }).where(eq(nics.id, last.second)).run(), /ipv6: .* is not an IPv6 address/],
      ["dns not JSON", () => h.db.update(nics).set({ dns: "10.0.0.1 & reboot" }).where(eq(nics.id, last.second)).run(), /dns: /],
      ["dns entry", () => h.db.update(nics).set({ dns: JSON.stringify(["10.0.0.1\r"]) }).where(eq(nics.id, last.second)).run(), /dns.0: .* is not an IPv4 or IPv6 address/],
      ["members not JSON", () => h.db.insert(nicLinks).values({ machineId: last.id, ifname: "bond0", kind: "bond", members: "x" as unknown as string[] }).run(), /members: /],
      ["link kind", () => h.db.insert(nicLinks).values({ machineId: last.id, ifname: "br0", kind: "bridge" as "bond" }).run(), /kind: /],
      ["vlan parent", () => h.db.insert(nicLinks).values({ machineId: last.id, ifname: "v9", kind: "vlan", parent: "../eno1", vlanId: 9 }).run(), /parent: Interface names are/],
      ["vlan id", () => h.db.insert(nicLinks).values({ machineId: last.id, ifname: "v9", kind: "vlan", parent: "eno1", vlanId: 5000 }).run(), /vlanId: VLAN id is 1-4094/],
      ["lacp rate", () => h.db.insert(nicLinks).values({ machineId: last.id, ifname: "bond0", kind: "bond", members: ["eno2"], bondMode: "802.3ad", lacpRate: "fast miimon=1" }).run(), /lacpRate: LACP rate is slow or fast/],
      ["non-ASCII name", () => h.db.update(nics).set({ ifname: "ëno1" }).where(eq(nics.id, last.boot)).run(), /name: Interface names are/],
    ];
    let last = machine();
    for (const [what, corrupt, expected] of cases) {
      last = machine();
      corrupt();
      const e = await refusal(last.id);
      expect(e.message, what).toMatch(expected);
      expect(e.message, what).toContain(`machine "ln-${n}"`);
      // Nothing is rendered from a refused network: the renderers never see it.
    }
  });

  it("renders what it loads in every format", async () => {
    const m = machine();
    h.db.update(nics).set({ ipv6Mode: "slaac" }).where(eq(nics.id, m.second)).run();
    const net = await loadNetModelIn(h.store, h.store.db, m.id, ["10.30.0.53"], "lab.example");
    for (const render of Object.values(NET_RENDERERS)) expect(render(net).length).toBeGreaterThan(0);
    expect(NET_RENDERERS.ifupdown(net)[0]!.content).toContain("iface eno2 inet6 auto\n");
  });
});
