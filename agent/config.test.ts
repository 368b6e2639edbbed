import { describe, expect, it } from "vitest";
import { parseArgs } from "./config";

describe("agent arguments", () => {
  it("reads --api, repeated --mac and the test switches", () => {
    const c = parseArgs(["--api", "http://10.0.0.1:3000/", "--mac", "52:54:00:00:00:01", "--mac", "52:54:00:00:00:02", "--once", "--target-disk", "/tmp/d", "--no-reboot"]);
    expect(c).toMatchObject({ api: "http://10.0.0.1:3000", macs: ["52:54:00:00:00:01", "52:54:00:00:00:02"], once: true, targetDisk: "/tmp/d", noReboot: true, waitS: 20 });
  });

  it("refuses unknown arguments, a missing value and a non-HTTP API", () => {
    expect(() => parseArgs(["--api", "http://x", "--mac", "m", "--frobnicate"])).toThrow(/unknown argument --frobnicate/);
    expect(() => parseArgs(["--api"])).toThrow(/--api needs a value/);
    expect(() => parseArgs(["--api", "ftp://x", "--mac", "m"])).toThrow(/no API URL/);
    expect(() => parseArgs(["--api", "http://x", "--mac", "m", "--wait-s", "99"])).toThrow(/--wait-s/);
  });
});
