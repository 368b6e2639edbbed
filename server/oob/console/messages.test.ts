import { describe, expect, it } from "vitest";
import { checkMachineId, checkViewerId, checkViewerName, keyboardHolder, parseKeyboardHolder, validMessage } from "./messages";

const HOSTILE = ["", "a\nb", "a\rb", "a\u0000b", "a\\b", "a'b", 'a"b', "$(reboot)", "a;b", "a&b", "../x", "a|b", "a b", "x".repeat(65), "\u00e9", "a\u2028b"];

describe("console cluster input checks", () => {
  it("machine ids are positive 32-bit integers", () => {
    expect(checkMachineId(1)).toBe(1);
    expect(checkMachineId(2 ** 31 - 1)).toBe(2 ** 31 - 1);
    for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY, "1", null, undefined]) expect(() => checkMachineId(bad)).toThrow(/machine id/);
  });

  it("viewer ids and names refuse separators, controls, shell and path text, over-long and non-ASCII values", () => {
    expect(checkViewerId("AbC-12_x")).toBe("AbC-12_x");
    expect(checkViewerName("ops.jane-doe_2@site")).toBe("ops.jane-doe_2@site");
    for (const bad of HOSTILE) {
      expect(() => checkViewerId(bad)).toThrow(/viewer id/);
      expect(() => checkViewerName(bad)).toThrow(/viewer name/);
    }
    expect(() => keyboardHolder({ process: "p:1", viewerId: "v", name: "a|b" })).toThrow();
    expect(() => keyboardHolder({ process: "p 1", viewerId: "v", name: "ab" })).toThrow();
  });

  it("a keyboard holder round-trips; anything else parses as nobody", () => {
    const h = { process: "host-a.example:123", viewerId: "Zx_9-", name: "olga" };
    expect(parseKeyboardHolder(keyboardHolder(h))).toEqual(h);
    for (const bad of ["", "a|b", "a|b|c|d", "p:1||olga", "p:1|v|ol ga", "p\n1|v|olga", "p:1|v|" + "x".repeat(65)]) expect(parseKeyboardHolder(bad)).toBeNull();
  });

  it("messages are checked field by field", () => {
    const ok = [
      { t: "d", m: 1, o: "p:1", e: 1, s: 1, b: "AAEC/w==" },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 1, state: "open", holder: "olga", viewers: 2 } },
      { t: "w", m: 1, o: "p:1", n: 0 },
      { t: "k", m: 1, o: "p:1" },
      { t: "q", m: 1, o: "p:1", r: 3 },
      { t: "r", m: 1, o: "p:1", e: 2, to: "q:2", r: 3, s: 0, i: 0, n: 1, b: "" },
      { t: "i", m: 1, o: "p:1", b: "bHMNCg==" },
    ];
    for (const m of ok) expect(validMessage(m)).toEqual(m);
    const bad: unknown[] = [
      null,
      "x",
      [],
      { t: "d", m: 1, o: "p:1", e: 1, s: 1, b: "not base64!" },
      { t: "d", m: 0, o: "p:1", e: 1, s: 1, b: "" },
      { t: "d", m: 2 ** 31, o: "p:1", e: 1, s: 1, b: "" },
      { t: "d", m: 1, o: "p 1\n", e: 1, s: 1, b: "" },
      { t: "d", m: 1, o: "p:1", e: 1, s: 1.5, b: "" },
      { t: "d", m: 1, o: "p:1", e: 1, s: 1, b: "A".repeat(8004) },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 2, state: "open", holder: null, viewers: 1 } },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 1, state: "hacked", holder: null, viewers: 1 } },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 1, state: "open", holder: "<script>", viewers: 1 } },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 1, state: "open", holder: null, viewers: -1 } },
      { t: "st", m: 1, o: "p:1", e: 1, st: { machineId: 1, state: "open", holder: null, viewers: 1, error: "x".repeat(2001) } },
      { t: "w", m: 1, o: "p:1", n: "5" },
      { t: "r", m: 1, o: "p:1", e: 2, to: "q:2", r: 3, s: 0, i: 1, n: 1, b: "" },
      { t: "r", m: 1, o: "p:1", e: 2, to: "q:2", r: 3, s: 0, i: 0, n: 1_000_000, b: "" },
      { t: "i", m: 1, o: "p:1", b: "$(reboot)" },
      { t: "x", m: 1, o: "p:1" },
    ];
    for (const m of bad) expect(validMessage(m)).toBeNull();
  });
});
