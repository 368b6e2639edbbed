import { describe, expect, it } from "vitest";
import { assignableCount, canonicalAddr, firstFree, formatAddr, parseAddr, parseCidr, pinProblem, subnetCreateSchema, subnetPlan } from "./subnets";

const plan = (over: Partial<Parameters<typeof subnetPlan>[0]> = {}) =>
  subnetPlan({ id: 1, name: "s", cidr: "10.1.0.0/24", gateway: "10.1.0.1", reserved: [{ start: "10.1.0.2", end: "10.1.0.9" }], dynamic: { start: "10.1.0.200", end: "10.1.0.250" }, ...over });

describe("addresses", () => {
  it.each([
    ["10.0.0.1", "10.0.0.1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::", "::"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
    ["fe80:0:0:0:1:2:3:4", "fe80::1:2:3:4"],
    ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
  ])("%s is canonically %s", (a, b) => expect(canonicalAddr(a)).toBe(b));

  it("round-trips every 16-bit group through BigInt", () => {
    const a = parseAddr("ffff:0:1234:abcd::ffff")!;
    expect(a.family).toBe(6);
    expect(formatAddr(a)).toBe("ffff:0:1234:abcd::ffff");
    expect(parseAddr("255.255.255.255")!.n).toBe(0xffffffffn);
  });

  it("CIDRs need zero host bits", () => {
    expect(parseCidr("10.1.0.0/24")).toMatchObject({ family: 4, prefix: 24 });
    expect(parseCidr("10.1.0.1/24")).toBeNull();
    expect(parseCidr("2001:db8::/64")).toMatchObject({ family: 6, prefix: 64 });
    expect(parseCidr("2001:db8::/129")).toBeNull();
    expect(parseCidr("10.0.0.0/33")).toBeNull();
  });
});

describe("allocation", () => {
  it("hands out the first address outside gateway, reserved and dynamic ranges", () => {
    const p = plan();
    expect(formatAddr({ family: 4, n: firstFree(p, new Set())! })).toBe("10.1.0.10");
    const taken = new Set([parseAddr("10.1.0.10")!.n, parseAddr("10.1.0.11")!.n]);
    expect(formatAddr({ family: 4, n: firstFree(p, taken)! })).toBe("10.1.0.12");
    // After .199 it jumps the dynamic range to .251; .255 is broadcast.
    expect(formatAddr({ family: 4, n: firstFree(p, new Set(), parseAddr("10.1.0.200")!.n)! })).toBe("10.1.0.251");
    expect(firstFree(p, new Set(), parseAddr("10.1.0.255")!.n)).toBeNull();
    expect(assignableCount(p)).toBe(254n - 1n - 8n - 51n);
  });

  it("never enumerates an IPv6 /64: it steps over what is taken only", () => {
    const p = subnetPlan({ id: 2, name: "v6", cidr: "2001:db8:1::/64", gateway: "2001:db8:1::1", reserved: [{ start: "2001:db8:1::2", end: "2001:db8:1::ffff" }], dynamic: null });
    const t0 = performance.now();
    expect(formatAddr({ family: 6, n: firstFree(p, new Set())! })).toBe("2001:db8:1::1:0");
    expect(assignableCount(p)).toBe((1n << 64n) - 1n - 0xffffn);
    // The last address of the /64, then full.
    const last = parseAddr("2001:db8:1::ffff:ffff:ffff:ffff")!.n;
    expect(formatAddr({ family: 6, n: firstFree(p, new Set(), last)! })).toBe("2001:db8:1:0:ffff:ffff:ffff:ffff");
    expect(firstFree(p, new Set([last]), last)).toBeNull();
    expect(performance.now() - t0).toBeLessThan(1000); // sanity: would never finish if it enumerated
  });

  it("pinning names the reason", () => {
    const p = plan();
    expect(pinProblem(p, "10.1.0.50")).toBeNull();
    expect(pinProblem(p, "10.1.0.1")).toMatch(/gateway/);
    expect(pinProblem(p, "10.1.0.5")).toMatch(/reserved/);
    expect(pinProblem(p, "10.1.0.210")).toMatch(/dynamic/);
    expect(pinProblem(p, "10.1.1.5")).toMatch(/not in subnet s/);
    expect(pinProblem(p, "10.1.0.255")).toMatch(/broadcast/);
    expect(pinProblem(p, "2001:db8::1")).toMatch(/not an IPv4/);
  });
});

describe("subnetCreateSchema", () => {
  const ok = { name: "rack-a", cidr: "10.9.0.0/24", gateway: "10.9.0.1", dns: ["10.9.0.2", "2001:4860:4860::8888"], reserved: [{ start: "10.9.0.2", end: "10.9.0.20" }], dynamic: { start: "10.9.0.100", end: "10.9.0.150" } };
  it("accepts and canonicalises", () => {
    const r = subnetCreateSchema.parse({ ...ok, cidr: "2001:DB8:0::/64", gateway: "2001:db8::1", reserved: [], dynamic: null });
    expect(r.cidr).toBe("2001:db8::/64");
    expect(subnetCreateSchema.parse(ok).provisioning).toBe(false);
  });

  it.each([
    ["gateway outside", { gateway: "10.8.0.1" }, /not in 10.9.0.0\/24/],
    ["range backwards", { dynamic: { start: "10.9.0.150", end: "10.9.0.100" } }, /before its start/],
    ["reserved overlaps dynamic", { reserved: [{ start: "10.9.0.90", end: "10.9.0.110" }] }, /overlaps the dynamic range/],
    ["host bits", { cidr: "10.9.0.1/24" }, /not a network with a prefix/],
    ["too large", { cidr: "10.0.0.0/7", gateway: null, reserved: [], dynamic: null }, /at most a \/8/],
    ["v6 provisioning", { cidr: "2001:db8::/64", gateway: null, reserved: [], dynamic: null, provisioning: true }, /provisioning subnet is IPv4/],
    ["provisioning without a range", { dynamic: null, provisioning: true }, /needs a dynamic range/],
    ["vlan", { vlanId: 4095 }, /1-4094/],
  ])("refuses %s", (_l, over, msg) => {
    const r = subnetCreateSchema.safeParse({ ...ok, ...over });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message).join("; ")).toMatch(msg);
  });

  // Hostile input in every text field: refused with a message, never passed on.
  const hostile = ["a\nb", "a\rb", "a\u0000b", "a\\b", 'a"b', "a'b", "$(reboot)", "a;b", "a&b", "..", "../etc", "dhcp-range", "iface", "x".repeat(300), "nœud", "10.9.0.1\n", "10.9.0.1 ", "10.9.0.1;", "10.9.0.0/24\n"];
  it.each(hostile)("refuses or contains %j in name, cidr, gateway, dns and ranges", (v) => {
    for (const over of [{ name: v }, { cidr: v }, { gateway: v }, { dns: [v] }, { reserved: [{ start: v, end: "10.9.0.20" }] }, { dynamic: { start: "10.9.0.100", end: v } }]) {
      const r = subnetCreateSchema.safeParse({ ...ok, ...over });
      if (r.success) {
        // Contained: a plain word as a name, or surrounding whitespace trimmed; nothing else gets through.
        const strings = JSON.stringify(r.data).match(/"(?:[^"\\]|\\.)*"/g)!.map((q) => JSON.parse(q) as string);
        for (const t of strings) expect(t, JSON.stringify(over)).not.toMatch(/[\s"';$&\\\u0000-\u001f]|\.\./);
        expect(["dhcp-range", "iface", "10.9.0.1\n", "10.9.0.1 ", "10.9.0.0/24\n"]).toContain(v);
      } else expect(r.error.issues[0]!.message.length).toBeGreaterThan(5);
    }
  });
});
