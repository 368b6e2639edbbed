import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fromCmdline, parseArgs } from "./config";

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

  it("reads rackhand.nonce from the kernel command line, or --nonce; refuses a malformed one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-cmdline-"));
    try {
      const cmdline = path.join(dir, "cmdline");
      const nonce = "0123456789abcdef".repeat(4);
      fs.writeFileSync(cmdline, `console=ttyS0 rackhand.api=http://10.0.0.1:3000 rackhand.machine=7 rackhand.nonce=${nonce} rackhand.mode=deploying\n`);
      expect(fromCmdline("nonce", cmdline)).toBe(nonce);
      expect(fromCmdline("api", cmdline)).toBe("http://10.0.0.1:3000");
      expect(fromCmdline("rootfs", cmdline)).toBeNull();
      expect(fromCmdline("nonce", path.join(dir, "absent"))).toBeNull();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const nonce = "f".repeat(64);
    expect(parseArgs(["--api", "http://x", "--mac", "m", "--nonce", nonce]).nonce).toBe(nonce);
    for (const bad of ["f".repeat(63), "f".repeat(65), "F".repeat(64), "g".repeat(64), `${"f".repeat(63)}\n`, "$(reboot)"]) {
      expect(() => parseArgs(["--api", "http://x", "--mac", "m", "--nonce", bad])).toThrow(/64 hex digits/);
    }
  });
});
