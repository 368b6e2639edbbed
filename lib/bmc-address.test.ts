import { describe, expect, it } from "vitest";
import { bmcAddressProblem, ipmiPasswordProblem, ipmiUsernameProblem, isIPv6, utf8Bytes } from "./bmc-address";
import { bmcInputSchema } from "./schemas";

describe("isIPv6", () => {
  it.each(["::1", "::", "fe80::1", "2001:db8::8a2e:370:7334", "2001:0db8:0000:0000:0000:ff00:0042:8329", "::ffff:192.0.2.1", "64:ff9b::10.0.0.1", "1::"])(
    "accepts %s",
    (a) => expect(isIPv6(a)).toBe(true),
  );
  it.each([
    ":",
    ":::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1::2::3",
    "12345::1",
    "g::1",
    "fe80::1%eth0",
    "[::1]",
    "::ffff:192.0.2.256",
    "1:2:3:4:5:6:7::8:9",
    "::1\n",
    "",
  ])("refuses %j", (a) => expect(isIPv6(a)).toBe(false));
});

describe("bmcAddressProblem", () => {
  it.each(["10.43.1.9", " bmc-01.example.com\r\n", "bmc01", "::1", "2001:db8::1", "127.0.0.1"])("accepts %s", (a) => expect(bmcAddressProblem(a)).toBeNull());
  it.each([
    ["10.43.1.999", /not an IPv4 address/],
    ["10.43.1", /not an IPv4 address/],
    ["010.43.1.9", /not an IPv4 address/],
    ["1.2.3.4.5", /not an IPv4 address/],
    ["2001:db8::g", /not an IPv6 address/],
    ["fe80::1%eth0", /not an IPv6 address/],
    ["bmc.10", /all-digit label/],
    // Hostile input: a command line (ipmitool -H), a config file, a path.
    ["bmc\n-H evil", /not an IPv4 or IPv6 address or a host name/],
    ["bm\rc", /not an IPv4 or IPv6 address or a host name/],
    ["bmc\0", /not an IPv4 or IPv6 address or a host name/],
    ["bmc\\x", /not an IPv4 or IPv6 address or a host name/],
    ['"bmc"', /not an IPv4 or IPv6 address or a host name/],
    ["'bmc'", /not an IPv4 or IPv6 address or a host name/],
    ["$(reboot)", /not an IPv4 or IPv6 address or a host name/],
    ["bmc;reboot", /not an IPv4 or IPv6 address or a host name/],
    ["bmc&reboot", /not an IPv4 or IPv6 address or a host name/],
    ["../../etc/passwd", /not an IPv4 or IPv6 address or a host name/],
    ["-oProxyCommand=x", /not an IPv4 or IPv6 address or a host name/],
    ["bmç.example", /not an IPv4 or IPv6 address or a host name/],
    ["a".repeat(254), /longer than 253/],
    ["", /required/],
  ])("refuses %j (%s)", (a, re) => expect(bmcAddressProblem(a)).toMatch(re));
});

describe("IPMI credentials", () => {
  it("counts UTF-8 bytes, not characters", () => {
    expect(utf8Bytes("é")).toBe(2);
    // The ASCII fast path and its edges: DEL is one byte, U+0080 two, an emoji (a surrogate pair) four.
    expect([utf8Bytes(""), utf8Bytes("pw-1\x00\t"), utf8Bytes("\x7f"), utf8Bytes("\u0080"), utf8Bytes("😀"), utf8Bytes("a😀b")]).toEqual([0, 6, 1, 2, 4, 6]);
    expect(ipmiPasswordProblem("a".repeat(20))).toBeNull();
    expect(ipmiPasswordProblem("a".repeat(21))).toMatch(/at most 20 bytes; this one is 21 bytes/);
    // 11 characters, 22 bytes.
    expect(ipmiPasswordProblem("é".repeat(11))).toMatch(/this one is 22 bytes/);
    expect(ipmiPasswordProblem("密码密码密码密")).toMatch(/21 bytes/);
    expect(ipmiUsernameProblem("a".repeat(16))).toBeNull();
    expect(ipmiUsernameProblem("a".repeat(17))).toMatch(/at most 16 bytes/);
  });

  it.each(["pw\n", "pw\r", "pw\0", "pw\t", "\u007f"])("refuses a control character in the password and the user: %j", (v) => {
    expect(ipmiPasswordProblem(v)).toMatch(/control character/);
    expect(ipmiUsernameProblem(v)).toMatch(/control character/);
  });

  it.each(["$(reboot)", "a;b&c", `q"uo'te\\`, "../x", "pässwörd"])("keeps other characters of a password in its field: %j", (v) => {
    expect(ipmiPasswordProblem(v)).toBeNull();
  });

  it("the enrollment schema refuses a 25-byte password and 10.43.1.999, and takes an IPv6 address", () => {
    const base = { address: "10.43.1.9", username: "admin", password: "secret" };
    expect(bmcInputSchema.safeParse(base).success).toBe(true);
    const long = bmcInputSchema.safeParse({ ...base, password: "x".repeat(25) });
    expect(long.success).toBe(false);
    expect(long.error!.issues.map((i) => [i.path.join("."), i.message])).toEqual([["password", "IPMI passwords are at most 20 bytes; this one is 25 bytes (UTF-8)"]]);
    const bad = bmcInputSchema.safeParse({ ...base, address: "10.43.1.999", password: "x".repeat(25) });
    // Both problems at once.
    expect(bad.error!.issues.map((i) => i.path.join("."))).toEqual(["address", "password"]);
    expect(bmcInputSchema.parse({ ...base, address: "2001:db8::1" }).address).toBe("2001:db8::1");
  });
});
