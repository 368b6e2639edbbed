import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ipAllocations, nics } from "../db/schema";
import { loadEffectiveNetbootSettings } from "../netboot/settings";
import { renderDnsmasqConf } from "../netboot/render-boot";
import { expectTrpcError, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";

let h: Harness;
let n = 500;
const bootNic = (machineId: number) => h.db.select().from(nics).where(eq(nics.machineId, machineId)).get()!;

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("subnets", () => {
  let a = 0;
  it("creates, lists with use and refuses overlaps and duplicates", async () => {
    ({ id: a } = await h.admin.subnets.create({ name: "alloc-a", cidr: "10.60.0.0/24", gateway: "10.60.0.1", dns: ["10.60.0.2"], vlanId: 60, reserved: [{ start: "10.60.0.2", end: "10.60.0.9" }], dynamic: { start: "10.60.0.200", end: "10.60.0.250" } }));
    const list = await h.viewer.subnets.list();
    expect(list.find((s) => s.id === a)).toMatchObject({ cidr: "10.60.0.0/24", allocated: 0, assignable: "194", free: "194", vlanId: 60 });
    await expectTrpcError(h.admin.subnets.create({ name: "alloc-b", cidr: "10.60.0.128/25" }), "CONFLICT", "CONFLICT");
    await expectTrpcError(h.admin.subnets.create({ name: "alloc-a", cidr: "10.61.0.0/24" }), "CONFLICT", "CONFLICT");
    await expectTrpcError(h.operator.subnets.create({ name: "op", cidr: "10.62.0.0/24" }), "FORBIDDEN");
  });

  it("auto gives the first free address outside reserved, dynamic and gateway, with the subnet's prefix and gateway", async () => {
    const m1 = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { ifname: "eno1", subnetId: a } }));
    const m2 = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { ifname: "eno1", subnetId: a, addressMode: "auto" } }));
    expect(bootNic(m1.id)).toMatchObject({ ip: "10.60.0.10", prefix: 24, gateway: "10.60.0.1", addressMode: "auto", subnetId: a });
    expect(bootNic(m2.id).ip).toBe("10.60.0.11");
    const s = await h.viewer.subnets.get({ id: a });
    expect(s).toMatchObject({ allocated: 2, free: "192" });
    expect(s.allocations.map((x) => [x.address, x.machineName, x.interface, x.mode])).toEqual([
      ["10.60.0.10", `node-${n - 1}`, "eno1", "auto"],
      ["10.60.0.11", `node-${n}`, "eno1", "auto"],
    ]);
  });

  it("static pins an address: in the subnet, not reserved, dynamic or taken, with the holder named", async () => {
    const m = await h.operator.machines.enroll(machineInput(++n, { ip: "10.60.0.50", network: { subnetId: a, addressMode: "static" } }));
    expect(bootNic(m.id)).toMatchObject({ ip: "10.60.0.50", addressMode: "static" });
    const holder = `node-${n}`;
    for (const [ip, msg] of [
      ["10.60.0.50", new RegExp(`10.60.0.50 in subnet alloc-a is already (held by ${holder}|the IP of ${holder})`)],
      ["10.60.0.5", /reserved range/],
      ["10.60.0.220", /dynamic range/],
      ["10.60.0.1", /gateway/],
      ["10.70.0.5", /not in subnet alloc-a/],
    ] as const) {
      const { error } = await expectTrpcError(h.operator.machines.enroll(machineInput(++n, { ip, network: { subnetId: a, addressMode: "static" } })), ip === "10.60.0.50" ? "CONFLICT" : "BAD_REQUEST");
      expect(error.message).toMatch(msg);
    }
    // The next auto skips the pinned address's neighbours only as far as taken.
    const m3 = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: a } }));
    expect(bootNic(m3.id).ip).toBe("10.60.0.12");
  });

  it("the machine form cannot retype an allocated boot address (the network editor owns it)", async () => {
    const m = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: a } }));
    const { error } = await expectTrpcError(h.operator.machines.update({ id: m.id, ip: "10.60.0.99" }), "CONFLICT");
    expect(error.message).toMatch(/comes from subnet alloc-a/);
    await h.operator.machines.delete({ id: m.id });
  });

  it("the database itself refuses a second holder of an address", () => {
    const row = h.db.select().from(ipAllocations).where(eq(ipAllocations.subnetId, a)).get()!;
    expect(() => h.db.insert(ipAllocations).values({ ...row, id: undefined }).run()).toThrow(/UNIQUE constraint failed: ip_allocations.subnet_id, ip_allocations.address/);
  });

  it("auto without a subnet, or from a full subnet, is refused clearly", async () => {
    const { error } = await expectTrpcError(h.operator.machines.enroll(machineInput(++n, { ip: null, network: { addressMode: "auto" } })), "BAD_REQUEST");
    expect(error.message).toMatch(/auto needs a subnet/);
    const { id: tiny } = await h.admin.subnets.create({ name: "tiny", cidr: "10.63.0.0/30" });
    await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: tiny } }));
    await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: tiny } }));
    const full = await expectTrpcError(h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: tiny } })), "CONFLICT");
    expect(full.error.message).toMatch(/tiny \(10.63.0.0\/30\) has no free address left/);
  });

  it("IPv6: auto allocates from a /64 without enumerating it", async () => {
    const { id: v6 } = await h.admin.subnets.create({ name: "v6", cidr: "2001:db8:60::/64", gateway: "2001:db8:60::1", reserved: [{ start: "2001:db8:60::2", end: "2001:db8:60::ff" }] });
    const m = await h.operator.machines.enroll(machineInput(++n, { network: { ifname: "eno1", subnetId: v6 } }));
    expect(bootNic(m.id)).toMatchObject({ ip6: "2001:db8:60::100", prefix6: 64, gateway6: "2001:db8:60::1", ipv6Mode: "auto", subnet6Id: v6 });
    expect((await h.viewer.subnets.list()).find((s) => s.id === v6)!.free).toBe(String((1n << 64n) - 1n - 0xffn - 1n));
  });

  it("refuses deleting a subnet with allocations, and a change that would strand them", async () => {
    const { error } = await expectTrpcError(h.admin.subnets.delete({ id: a }), "CONFLICT");
    expect(error.message).toMatch(/alloc-a has \d+ allocated address\(es\)/);
    const s = await h.viewer.subnets.get({ id: a });
    const upd = await expectTrpcError(
      h.admin.subnets.update({ id: a, name: s.name, cidr: s.cidr, gateway: s.gateway, dns: s.dns, reserved: [{ start: "10.60.0.2", end: "10.60.0.30" }], dynamic: s.dynamic }),
      "CONFLICT",
    );
    expect(upd.error.message).toMatch(/10.60.0.10 \(node-/);
    await h.admin.subnets.update({ id: a, name: "alloc-a", cidr: s.cidr, gateway: s.gateway, dns: s.dns, vlanId: 61, reserved: s.reserved, dynamic: s.dynamic });
    expect((await h.viewer.subnets.get({ id: a })).vlanId).toBe(61);
    const { id: empty } = await h.admin.subnets.create({ name: "empty", cidr: "10.64.0.0/24" });
    await h.admin.subnets.delete({ id: empty });
  });

  it("deleting the machine frees its address", async () => {
    const m = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: a } }));
    const ip = bootNic(m.id).ip;
    await h.operator.machines.delete({ id: m.id });
    const again = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: a } }));
    expect(bootNic(again.id).ip).toBe(ip);
  });

  it("CSV: subnet and address_mode columns allocate in the import; bad values name row and column", async () => {
    const { id: c } = await h.admin.subnets.create({ name: "csv-net", cidr: "10.65.0.0/24", gateway: "10.65.0.1" });
    const csv = ["name,mac,ip,subnet,address_mode", "csv-1,52:54:00:65:00:01,,csv-net,auto", "csv-2,52:54:00:65:00:02,10.65.0.2,csv-net,static", "csv-3,52:54:00:65:00:03,,csv-net,"].join("\n");
    const r = await h.operator.machines.importCsv({ csv });
    expect(r).toMatchObject({ ok: true, imported: 3 });
    // Pinned rows are set aside first: the auto rows take .2's neighbours, never row 2's pinned .2.
    const got = (await h.viewer.subnets.get({ id: c })).allocations.map((x) => [x.machineName, x.address, x.mode]);
    expect(got).toEqual([
      ["csv-2", "10.65.0.2", "static"],
      ["csv-1", "10.65.0.3", "auto"],
      ["csv-3", "10.65.0.4", "auto"],
    ]);
    const bad = await h.operator.machines.importCsv({
      dryRun: true,
      csv: ["name,mac,ip,subnet,address_mode", "csv-4,52:54:00:65:00:04,,nope,auto", "csv-5,52:54:00:65:00:05,,csv-net,$(reboot)", "csv-6,52:54:00:65:00:06,10.65.0.2,csv-net,static", "csv-7,52:54:00:65:00:07,10.65.0.9,csv-net,static", "csv-8,52:54:00:65:00:08,10.65.0.9,csv-net,static"].join("\n"),
    });
    expect(bad.ok).toBe(false);
    const errs = bad.errors.map((e) => `${e.row}/${e.field}: ${e.message}`);
    expect(errs).toContainEqual(expect.stringMatching(/^1\/subnet: No subnet named "nope"/));
    expect(errs).toContainEqual(expect.stringMatching(/^2\/address_mode: Address mode is one of auto, static, dhcp, none/));
    expect(errs).toContainEqual(expect.stringMatching(/^3\/ip: IP 10.65.0.2 belongs to csv-2/));
    expect(errs).toContainEqual(expect.stringMatching(/^5\/ip: IP 10.65.0.9 is also the IP on row 4/));
  });

  it("CSV: hostile subnet and address_mode cells are refused with the row and column named, nothing imported", async () => {
    const HOSTILE = ["a\nb", "a\rb", "a\u0000b", "a\\b", 'a""b', "a'b", "$(reboot)", "a;b", "a&b", "..", "csv-net;", "st\natic", "dhcp-range", "x".repeat(300), "nœud", "=cmd()"];
    for (const [i, v] of HOSTILE.entries()) {
      for (const col of ["subnet", "address_mode"] as const) {
        const cell = `"${v}"`;
        const row = col === "subnet" ? `h-${i},52:54:00:66:00:${(i + 16).toString(16)},${cell},auto` : `h-${i},52:54:00:66:00:${(i + 16).toString(16)},csv-net,${cell}`;
        const r = await h.operator.machines.importCsv({ dryRun: true, csv: `name,mac,subnet,address_mode\n${row}` });
        expect(r.ok, `${col}=${JSON.stringify(v)}`).toBe(false);
        expect(r.errors.some((e) => e.row === 1 && e.field === col && e.message.length > 10), `${col}=${JSON.stringify(v)}: ${JSON.stringify(r.errors)}`).toBe(true);
        await expectTrpcError(h.operator.machines.importCsv({ csv: `name,mac,subnet,address_mode\n${row}` }), "BAD_REQUEST", "CSV_INVALID");
      }
    }
  });

  it("the provisioning subnet's dynamic range becomes dnsmasq's DHCP range; the server address stays the settings'", async () => {
    await h.admin.netboot.saveSettings({ mode: "external", interface: "eth1", serverAddress: "10.66.0.1", netmask: "255.255.255.0", rangeStart: "10.66.0.100", rangeEnd: "10.66.0.200", httpBaseUrl: "http://10.66.0.1:3000" });
    const outside = await expectTrpcError(h.admin.subnets.create({ name: "prov-x", cidr: "10.67.0.0/24", dynamic: { start: "10.67.0.10", end: "10.67.0.20" }, provisioning: true }), "BAD_REQUEST");
    expect(outside.error.message).toMatch(/must contain the netboot server address 10.66.0.1/);
    await h.admin.subnets.create({ name: "prov", cidr: "10.66.0.0/23", gateway: "10.66.0.254", dns: ["10.66.0.53"], dynamic: { start: "10.66.1.10", end: "10.66.1.99" }, provisioning: true });
    await expectTrpcError(h.admin.subnets.create({ name: "prov2", cidr: "10.68.0.0/24", dynamic: { start: "10.68.0.10", end: "10.68.0.20" }, provisioning: true }), "BAD_REQUEST");
    const s = await loadEffectiveNetbootSettings(h.store);
    expect(s).toMatchObject({ serverAddress: "10.66.0.1", rangeStart: "10.66.1.10", rangeEnd: "10.66.1.99", netmask: "255.255.254.0", gateway: "10.66.0.254", dnsServers: ["10.66.0.53"] });
    const conf = renderDnsmasqConf(s, { hostsDir: "/h", tftpRoot: "/t", leaseFile: "/l", pidFile: "/p" }, null);
    expect(conf).toContain("dhcp-range=10.66.1.10,10.66.1.99,255.255.254.0,3600s\n");
    expect(conf).toContain("dhcp-option=option:router,10.66.0.254\n");
  });
});
