/**
 * The preseed's used-disk answers (issue 17 point 6): rendered, and checked by Debian's own parser
 * (`debconf-set-selections -c`, package debconf). Whether partman acts on them is UNPROVEN on this machine: the
 * mirror here serves no partman udebs (see docs/ARCHITECTURE.md); the agent-install profile is the proven path.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { profileOptionsSchema } from "../../../lib/netboot";
import { renderPreseed } from "./install";

const USED_DISK = [
  "d-i partman/unmount_active boolean true",
  "d-i partman-auto/purge_lvm_from_device boolean true",
  "d-i partman-lvm/device_remove_lvm boolean true",
  "d-i partman-lvm/device_remove_lvm_span boolean true",
  "d-i partman-md/device_remove_md boolean true",
  "d-i partman-lvm/confirm boolean true",
  "d-i partman-lvm/confirm_nooverwrite boolean true",
  "d-i partman-md/confirm boolean true",
  "d-i partman-md/confirm_nooverwrite boolean true",
  "d-i partman-partitioning/confirm_write_new_label boolean true",
  "d-i partman/choose_partition select finish",
  "d-i partman/confirm boolean true",
  "d-i partman/confirm_nooverwrite boolean true",
];

describe("preseed used-disk answers", () => {
  it("are all rendered and pass debconf-set-selections -c without a warning", () => {
    execFileSync("sh", ["-c", "command -v debconf-set-selections"], { stdio: "ignore" }); // fails loudly when missing
    const preseed = renderPreseed({
      machineId: 1,
      sessionId: 1,
      hostname: "used-1",
      domain: "lab.example",
      options: profileOptionsSchema.parse({ mirror: "http://deb.debian.org/debian", disk: "/dev/vda" }),
      net: { interfaces: [{ name: "ens3", kind: "ethernet", mac: "52:54:00:00:00:01", mode: "static", ipv4: "10.77.0.51/24", gateway4: "10.77.0.1" }], dns: ["10.77.0.1"], search: [] },
      filesUrl: "http://10.77.0.1:3000/boot/m/1/T",
      doneUrl: "http://10.77.0.1:3000/boot/m/1/T/done",
      proxy: "http://10.77.0.1:3142",
    });
    for (const l of USED_DISK) expect(preseed).toContain(`${l}\n`);
    expect(preseed).toContain("d-i partman/early_command string swapoff -a;");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-preseed-"));
    try {
      fs.writeFileSync(path.join(dir, "preseed.cfg"), preseed);
      const ok = spawnSync("debconf-set-selections", ["-c", path.join(dir, "preseed.cfg")], { encoding: "utf8" });
      expect(ok.status).toBe(0);
      expect(ok.stderr).toBe("");
      // The check can fail: a broken line is reported.
      fs.writeFileSync(path.join(dir, "bad.cfg"), preseed + "d-i partman/confirm\n");
      expect(spawnSync("debconf-set-selections", ["-c", path.join(dir, "bad.cfg")], { encoding: "utf8" }).stderr).toMatch(/parse error|warning/i);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
