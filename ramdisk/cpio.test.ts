import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cpioChunks } from "./cpio";
import { builtinModules, firmwareFiles, loadOrder, moduleAliases, moduleDepends, moduleFirmware, modprobeIndex } from "./modules";

describe("cpio newc writer", () => {
  it("writes an archive busybox cpio lists and extracts with modes, dirs and symlinks intact", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-cpio-"));
    try {
      const archive = Buffer.concat([
        ...cpioChunks([
          { name: "bin", kind: "dir", mode: 0o755 },
          { name: "bin/hello", kind: "file", mode: 0o755, data: Buffer.from("#!/bin/sh\necho hi\n") },
          { name: "bin/hi", kind: "symlink", mode: 0o777, data: Buffer.from("hello") },
          { name: "etc", kind: "dir", mode: 0o755 },
          { name: "etc/odd", kind: "file", mode: 0o600, data: Buffer.from("abc") },
        ]),
      ]);
      expect(archive.length % 4).toBe(0);
      fs.writeFileSync(path.join(dir, "a.cpio"), archive);
      const out = path.join(dir, "out");
      fs.mkdirSync(out);
      const r = spawnSync("busybox", ["cpio", "-i", "-d", "-F", path.join(dir, "a.cpio")], { cwd: out, encoding: "utf8" });
      expect(r.error, "busybox (Debian busybox-static) is needed for this test").toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(out, "bin/hello"), "utf8")).toBe("#!/bin/sh\necho hi\n");
      expect(fs.statSync(path.join(out, "bin/hello")).mode & 0o777).toBe(0o755);
      expect(fs.readlinkSync(path.join(out, "bin/hi"))).toBe("hello");
      expect(fs.readFileSync(path.join(out, "etc/odd"), "utf8")).toBe("abc");
      expect(fs.statSync(path.join(out, "etc/odd")).mode & 0o777).toBe(0o600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses names that would escape the archive root", () => {
    expect(() => [...cpioChunks([{ name: "../etc/passwd", kind: "file", mode: 0o644 }])]).toThrow(/bad cpio entry name/);
    expect(() => [...cpioChunks([{ name: "/init", kind: "file", mode: 0o755 }])]).toThrow(/bad cpio entry name/);
  });
});

describe("kernel module order", () => {
  const ko = (depends: string) => Buffer.from(`\x7fELF...\0license=GPL\0depends=${depends}\0vermagic=6.1\0`, "latin1");
  it("reads depends= from .modinfo", () => {
    expect(moduleDepends(ko("virtio,virtio_ring"))).toEqual(["virtio", "virtio_ring"]);
    expect(moduleDepends(ko(""))).toEqual([]);
  });
  it("orders dependencies first, once each, skipping built-ins", () => {
    const files: Record<string, Buffer> = {
      "/m/virtio_net.ko": ko("net_failover,virtio"),
      "/m/net_failover.ko": ko("failover"),
      "/m/failover.ko": ko(""),
      "/m/virtio_blk.ko": ko("virtio"),
    };
    const index = new Map(Object.keys(files).map((f) => [path.basename(f, ".ko"), f]));
    const order = loadOrder(["virtio_net", "virtio_blk"], index, builtinModules("kernel/drivers/virtio/virtio.ko\n"), (p) => files[p]!);
    expect(order).toEqual(["failover", "net_failover", "virtio_net", "virtio_blk"]);
    expect(() => loadOrder(["nope"], index, new Set(), (p) => files[p]!)).toThrow(/nope/);
  });

  it("indexes modules for busybox modprobe: every dependency (the first to load last) and the hardware aliases", () => {
    const ko = (depends: string, ...aliases: string[]) =>
      Buffer.from(`\x7fELF...\0license=GPL\0${aliases.map((a) => `alias=${a}\0`).join("")}depends=${depends}\0vermagic=6.1\0`, "latin1");
    const files: Record<string, Buffer> = {
      "/k/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko": ko("mlxfw,tls", "pci:v000015B3d00001017sv*sd*bc*sc*i*", "pci:v000015B3d00001019sv*sd*bc*sc*i*"),
      "/k/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko": ko("pci_hyperv_intf"),
      "/k/drivers/pci/controller/pci-hyperv-intf.ko": ko(""),
      "/k/net/tls/tls.ko": ko(""),
      "/k/drivers/scsi/sd_mod.ko": ko("crc_t10dif"),
    };
    expect(moduleAliases(files["/k/net/tls/tls.ko"]!)).toEqual([]);
    const mods = ["pci-hyperv-intf", "mlxfw", "tls", "mlx5_core", "sd_mod"].map((n) => {
      const file = Object.keys(files).find((f) => path.basename(f, ".ko") === n)!;
      return { rel: file.replace("/k/", "kernel/"), file };
    });
    const { dep, alias } = modprobeIndex(mods, (p) => files[p]!);
    expect(dep.split("\n")).toContain(
      "kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko: kernel/net/tls/tls.ko kernel/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko kernel/drivers/pci/controller/pci-hyperv-intf.ko",
    );
    expect(dep.split("\n")).toContain("kernel/drivers/pci/controller/pci-hyperv-intf.ko:");
    // A dependency built into the kernel (crc_t10dif here) is not a file to load.
    expect(dep.split("\n")).toContain("kernel/drivers/scsi/sd_mod.ko:");
    expect(alias).toBe("alias pci:v000015B3d00001017sv*sd*bc*sc*i* mlx5_core\nalias pci:v000015B3d00001019sv*sd*bc*sc*i* mlx5_core\n");
  });

  it("takes the firmware files the drivers declare from a firmware directory, and names the missing ones", () => {
    const ko = (...fw: string[]) => Buffer.from(`\x7fELF\0license=GPL\0${fw.map((f) => `firmware=${f}\0`).join("")}depends=\0`, "latin1");
    expect(moduleFirmware(ko("tigon/tg3.bin", "tigon/tg3_tso.bin"))).toEqual(["tigon/tg3.bin", "tigon/tg3_tso.bin"]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-fw-"));
    try {
      fs.mkdirSync(path.join(dir, "bnx2x"));
      fs.writeFileSync(path.join(dir, "bnx2x/bnx2x-e2-7.13.15.0.fw"), "fw");
      fs.symlinkSync("bnx2x-e2-7.13.15.0.fw", path.join(dir, "bnx2x/current.fw"));
      fs.mkdirSync(path.join(dir, "intel/ice/ddp"), { recursive: true });
      fs.writeFileSync(path.join(dir, "intel/ice/ddp/ice.pkg.zst"), "zstd bytes");
      const files: Record<string, Buffer> = {
        "/a.ko": ko("bnx2x/bnx2x-e2-7.13.15.0.fw", "bnx2x/current.fw", "intel/ice/ddp/ice.pkg"),
        "/b.ko": ko("tigon/tg3.bin", "bnx2x/bnx2x-e2-7.13.15.0.fw", "../../etc/shadow", "/etc/passwd"),
      };
      const r = firmwareFiles([{ file: "/a.ko" }, { file: "/b.ko" }], dir, (p) => files[p]!);
      expect(r.found.map((f) => f.rel)).toEqual(["bnx2x/bnx2x-e2-7.13.15.0.fw", "bnx2x/current.fw", "intel/ice/ddp/ice.pkg.zst"]);
      expect(r.found[1]!.file).toBe(fs.realpathSync(path.join(dir, "bnx2x/bnx2x-e2-7.13.15.0.fw")));
      expect(r.missing).toEqual(["tigon/tg3.bin"]);
      expect(r.refused).toEqual(["../../etc/shadow", "/etc/passwd"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
