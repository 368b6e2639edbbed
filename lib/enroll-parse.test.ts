import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEnrollFast } from "./enroll-parse";
import { machineEnrollSchema } from "./schemas";

// The fast path must never accept what the schema refuses, nor return anything but what the schema returns: bulk
// enrollment takes its value as the schema's, and leaves every refusal (and so every error message) to the schema.
const hostile = ["", " ", "\n", "a\nb", "a\rb", "a\0b", "a\\b", 'a"b', "a'b", "$(reboot)", "a;b", "a&b", "../etc", "ignore", "12h", "x".repeat(300), "nœud-ü", "\u00a0web-01\u00a0", "WEB-01", " web-01 ", "web-01.", "-web", "a".repeat(64)];
const text = fc.oneof(
  fc.constantFrom(...hostile),
  fc.constantFrom("web-01", "node-7", "rack1.db-3", "10.0.0.1", "10.0.0.256", " 10.0.0.1 ", "010.0.0.1", "fe80::1", "bmc.example", "BMC-01.Example", "root", "admin", "pw", "p".repeat(20), "p".repeat(21), "ü".repeat(10), "ü".repeat(11)),
  fc.constantFrom("52:54:00:12:34:56", "52-54-00-12-34-56", "5254.0012.3456", "525400123456", "01:00:5e:00:00:01", "00:00:00:00:00:00", "52:54:00:12:34", "AA:BB:CC:DD:EE:FF", " 52:54:00:ab:cd:ef "),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
);
const num = fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.constantFrom(0, 1, 20, 21, 42, 623, 65535, 65536, 1.5, -0, NaN, Infinity, 2 ** 53, Number.MAX_SAFE_INTEGER), fc.double());
const anyValue = fc.oneof(text, num, fc.constantFrom(null, undefined, true, false, [], {}, [1], { a: 1 }));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof(a, anyValue), { nil: undefined, freq: 3 });
const bmc = fc.record(
  {
    driver: maybe(fc.constantFrom("ipmitool", "fake", "IPMITOOL", "redfish")),
    address: maybe(text),
    port: maybe(num),
    username: maybe(text),
    password: maybe(text),
    privilege: maybe(fc.constantFrom("USER", "OPERATOR", "ADMINISTRATOR", "admin")),
    cipherSuite: maybe(num),
  },
  { requiredKeys: [] },
);
const row = fc.record(
  {
    name: maybe(text),
    rackId: maybe(num),
    uPosition: maybe(num),
    uHeight: maybe(num),
    bootMac: maybe(text),
    ip: maybe(text),
    bmc: fc.option(fc.oneof(bmc, anyValue), { nil: undefined }),
    osProfileId: maybe(num),
    network: fc.option(fc.constantFrom(null, {}, { subnetId: 1 }, { ifname: "eno1", prefix: 24 }), { nil: undefined }),
    firmware: maybe(fc.constantFrom("auto", "bios", "uefi", "UEFI")),
  },
  { requiredKeys: [] },
);

/** The schema's verdict and the fast path's must agree wherever the fast path gives one. */
function check(candidate: Record<string, unknown>): "fast" | "schema" {
  const fast = parseEnrollFast(candidate);
  if (fast === null) return "schema";
  const p = machineEnrollSchema.safeParse(candidate);
  expect(p.success, JSON.stringify(candidate)).toBe(true);
  expect(fast).toStrictEqual(p.data);
  return "fast";
}

/** A valid row (the shape benches and the UI send), with `o` over it. */
const valid = (o: Record<string, unknown> = {}) => ({
  name: "web-01",
  rackId: 3,
  uPosition: 7,
  bootMac: "52:54:00:12:34:56",
  ip: "10.0.0.7",
  bmc: { driver: "fake", address: "10.1.0.7", port: 623, username: "admin", password: "pw-7" },
  ...o,
});

describe("parseEnrollFast", () => {
  it("returns the schema's value for the rows it takes, on random and hostile rows", () => {
    let fast = 0;
    const fields = ["name", "rackId", "uPosition", "uHeight", "bootMac", "ip", "bmc", "osProfileId", "network", "firmware"];
    fc.assert(
      fc.property(row, fc.subarray(fields), fc.boolean(), (r, replaced, whole) => {
        // A random row as it is, or a valid row with some of its fields replaced by the random row's (or dropped).
        const candidate: Record<string, unknown> = whole ? r : valid();
        if (!whole) for (const k of replaced) if (k in r) candidate[k] = r[k as keyof typeof r];
        else delete candidate[k];
        if (check(candidate) === "fast") fast++;
      }),
      { numRuns: 20_000 },
    );
    // The property is not vacuous: some random rows do take the fast path.
    expect(fast).toBeGreaterThan(0);
  });

  it("takes valid rows with small changes, and agrees with the schema on each", () => {
    const variants: Record<string, unknown>[] = [{}, { rackId: null, uPosition: null }, { ip: "" }, { ip: null }, { ip: " 10.0.0.9 " }, { name: " WEB-01 " }, { bootMac: "52-54-00-AB-CD-EF" }, { uHeight: 2 }, { firmware: "uefi" }, { bmc: null }, { bmc: undefined }, { network: null }, { osProfileId: 4 }, { bmc: { address: " BMC-7.Example ", username: " root ", password: " p w " } }, { bmc: { driver: "ipmitool", address: "10.1.0.7", port: 6230, username: "u", password: "p", privilege: "OPERATOR", cipherSuite: 17 } }];
    for (const v of variants) expect(check(valid(v)), JSON.stringify(v)).toBe("fast");
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(valid())), anyValue, (key, value) => {
        check(valid({ [key]: value }));
      }),
      { numRuns: 5_000 },
    );
    fc.assert(
      fc.property(fc.constantFrom("driver", "address", "port", "username", "password", "privilege", "cipherSuite"), anyValue, (key, value) => {
        check(valid({ bmc: { ...valid().bmc, [key]: value } }));
      }),
      { numRuns: 5_000 },
    );
  });

  it("leaves hostile values, unknown keys, prototypes and a network to the schema", () => {
    for (const v of hostile) {
      for (const key of ["name", "bootMac", "ip"]) expect(parseEnrollFast(valid({ [key]: v })) === null || v.trim() === "" || key === "name").toBe(true);
      expect(check(valid({ bmc: { ...valid().bmc, address: v } }))).toBe(machineEnrollSchema.safeParse(valid({ bmc: { ...valid().bmc, address: v } })).success ? "fast" : "schema");
      expect(check(valid({ bmc: { ...valid().bmc, password: v } }))).toBe(machineEnrollSchema.safeParse(valid({ bmc: { ...valid().bmc, password: v } })).success ? "fast" : "schema");
    }
    expect(parseEnrollFast(valid({ colour: "red" }))).toBeNull();
    expect(parseEnrollFast(valid({ bmc: { ...valid().bmc, extra: 1 } }))).toBeNull();
    expect(parseEnrollFast(JSON.parse('{"name":"a","bootMac":"52:54:00:00:00:01","__proto__":{"x":1}}') as Record<string, unknown>)).toBeNull();
    expect(parseEnrollFast(Object.assign(Object.create({ inherited: 1 }) as Record<string, unknown>, valid()))).toBeNull();
    expect(parseEnrollFast(valid({ network: { subnetId: 1 } }))).toBeNull();
    expect(parseEnrollFast(valid({ uPosition: "7" }))).toBeNull();
  });
});
