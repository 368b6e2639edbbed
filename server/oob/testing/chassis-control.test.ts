/**
 * chassis-control.sh (the lab's BMC → VM glue): the boot device picks QEMU's -boot for SeaBIOS and the
 * bootindex order that OVMF follows (@BOOTINDEX_NET@ / @BOOTINDEX_DISK@ in qemu.args). QEMU is replaced by a script that
 * records its arguments (this test is about the glue, not the VM).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = path.join(import.meta.dirname, "chassis-control.sh");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chassis-control-"));
const bin = path.join(dir, "bin");
fs.mkdirSync(bin);
// Records its arguments one per line and exits (as QEMU -daemonize does once the VM runs).
fs.writeFileSync(path.join(bin, "qemu-system-x86_64"), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_OUT"\n', { mode: 0o755 });

function control(state: string, ...args: string[]) {
  const r = spawnSync("sh", [SCRIPT, state, ...args], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ARGS_OUT: path.join(state, "argv") } });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return r.stdout;
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("chassis-control.sh with a VM", () => {
  const uefiArgs = ["-machine", "q35,accel=tcg", "-device", "virtio-net-pci,netdev=n0,romfile=,bootindex=@BOOTINDEX_NET@", "-device", "virtio-blk-pci,drive=d0,bootindex=@BOOTINDEX_DISK@", "-name", "a b;$(x)"];

  it.each([
    ["pxe", "n", "bootindex=1", "bootindex=2"],
    ["default", "c", "bootindex=2", "bootindex=1"],
  ])("boot device %s: -boot %s, NIC %s, disk %s; other arguments unchanged", (boot, b, nic, disk) => {
    const state = fs.mkdtempSync(path.join(dir, "vm-"));
    fs.writeFileSync(path.join(state, "qemu.args"), uefiArgs.join("\n") + "\n");
    control(state, "set", "boot", boot);
    control(state, "set", "power", "1");
    const argv = fs.readFileSync(path.join(state, "argv"), "utf8").split("\n");
    expect(argv).toContain(`virtio-net-pci,netdev=n0,romfile=,${nic}`);
    expect(argv).toContain(`virtio-blk-pci,drive=d0,${disk}`);
    expect(argv).toContain("a b;$(x)");
    expect(argv.slice(argv.indexOf("-boot"), argv.indexOf("-boot") + 2)).toEqual(["-boot", b]);
  });
});
