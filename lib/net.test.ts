import { describe, expect, it } from "vitest";
import { isHostname, isIPv4, normalizeMac } from "./net";
import { macSchema } from "./schemas";

describe("normalizeMac", () => {
  it.each([
    ["52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"],
    ["52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"],
    ["5254.00ab.cdef", "52:54:00:ab:cd:ef"],
    ["525400ABCDEF", "52:54:00:ab:cd:ef"],
    [" 52:54:0:ab:cd:ef ", "52:54:00:ab:cd:ef"],
    ["52:54:00:ab:cd:ef", "52:54:00:ab:cd:ef"],
    ["\t52:54:00:ab:cd:ef\n", "52:54:00:ab:cd:ef"],
  ])("%s -> %s", (input, out) => expect(normalizeMac(input)).toBe(out));

  it.each(["", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "52:54:00:ab:cd:ef\n:00", "52:54:00:ab:cd:e\u00e9", "52:54:00:ab:cd:ef;", "52:54:00:ab:cd:efa", "52:54-00:ab:cd:ef", "zz:54:00:ab:cd:ef", "5254.00ab.cde"])(
    "rejects %j",
    (input) => expect(normalizeMac(input)).toBeNull(),
  );

  it("refuses multicast and zero MACs as NIC addresses", () => {
    expect(macSchema.safeParse("01:00:5e:00:00:01").success).toBe(false);
    expect(macSchema.safeParse("ff:ff:ff:ff:ff:ff").success).toBe(false);
    expect(macSchema.safeParse("00:00:00:00:00:00").success).toBe(false);
    expect(macSchema.parse("AA-BB-CC-DD-EE-FF".replace("AA", "A8"))).toBe("a8:bb:cc:dd:ee:ff");
  });
});

describe("isIPv4", () => {
  it.each(["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.10.200"])("accepts %s", (s) => expect(isIPv4(s)).toBe(true));
  it.each(["10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "a.b.c.d", "10.0.0.-1", ""])("rejects %j", (s) =>
    expect(isIPv4(s)).toBe(false),
  );
});

describe("isHostname (RFC 1123)", () => {
  it.each(["node-01", "a", "rack1.dc1.example", "1node", "x".repeat(63)])("accepts %s", (s) => expect(isHostname(s)).toBe(true));
  it.each(["-node", "node-", "no_de", "no de", "x".repeat(64), "a..b", "", "a.".repeat(127) + "a"])("rejects %j", (s) =>
    expect(isHostname(s)).toBe(false),
  );
});
