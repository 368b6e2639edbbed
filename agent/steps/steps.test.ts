import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseArgs } from "../config";
import { StepFailure } from "../errors";
import { configureNetwork } from "./configure-network";
import type { StepContext } from "./context";
import { parseCpuinfo, parseMemTotal } from "./inventory";
import { mdadmCreateArgs, raid, raidSpec } from "./raid";
import { runScript } from "./run-script";
import { wipe } from "./wipe";
import { writeImage } from "./write-image";

let dir: string;
let server: http.Server;
let base: string;
const files = new Map<string, Buffer>();
const raw = crypto.randomBytes(3 << 20);
const sha = crypto.createHash("sha256").update(raw).digest("hex");

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-steps-"));
  fs.writeFileSync(path.join(dir, "img.raw"), raw);
  const zst = spawnSync("zstd", ["-c", "-1", path.join(dir, "img.raw")], { maxBuffer: 16 << 20 });
  if (zst.status !== 0) throw new Error(`zstd is required: ${zst.error?.message ?? String(zst.stderr)}`);
  files.set("img.raw", raw).set("img.raw.zst", zst.stdout).set("img.raw.gz", zlib.gzipSync(raw)).set("bad.raw.gz", crypto.randomBytes(4096));
  files.set("cut.raw.gz", zlib.gzipSync(raw).subarray(0, 100_000));
  server = http.createServer((req, res) => {
    const body = files.get((req.url ?? "/").slice(1));
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

function ctx(params: Record<string, unknown>, over: Partial<StepContext> = {}) {
  const lines: string[] = [];
  const c: StepContext = {
    stepId: 1,
    attempt: 1,
    params,
    log: (t) => void lines.push(t),
    signal: new AbortController().signal,
    // A BIOS machine whatever the host is (the firmware tests point efiDir at a directory that exists).
    config: { ...parseArgs(["--api", "http://127.0.0.1:1", "--mac", "52:54:00:00:00:01"]), targetDisk: null, efiDir: "/nonexistent/rackhand-test-bios" },
    afterReport: () => undefined,
    ...over,
  };
  return { c, lines };
}

function disk(name: string, mib = 8): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(mib << 20, 0xaa));
  return p;
}

const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as StepFailure);

describe("write_image", () => {
  it("streams zstd onto a file, verifies the sha256 and keeps the rest of the disk", async () => {
    const target = disk("w1");
    const { c, lines } = ctx({ url: `${base}/img.raw.zst`, sha256: sha, format: "raw.zst", target });
    expect(await writeImage(c)).toMatchObject({ bytes: raw.length, sha256: sha, verified: true });
    const onDisk = fs.readFileSync(target);
    expect(onDisk.length).toBe(8 << 20);
    expect(onDisk.subarray(0, raw.length).equals(raw)).toBe(true);
    expect(onDisk[raw.length]).toBe(0xaa);
    expect(lines.at(-2)).toMatch(/^verified: /);
    expect(lines.at(-1)).toMatch(/^firmware: no \/nonexistent\/rackhand-test-bios: this machine boots with legacy BIOS/);
  });

  it("guesses the format from the URL when none is given", async () => {
    const { c } = ctx({ url: `${base}/img.raw.gz`, sha256: sha, target: disk("w2") });
    expect(await writeImage(c)).toMatchObject({ format: "raw.gz", verified: true });
  });

  it("classifies failures: corrupt or cut archives, 404, missing target, too small a target are permanent", async () => {
    const t = disk("w3");
    expect(await failure(writeImage(ctx({ url: `${base}/bad.raw.gz`, target: t }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/not valid gzip/) });
    expect(await failure(writeImage(ctx({ url: `${base}/cut.raw.gz`, target: t }).c))).toMatchObject({ transient: false });
    expect(await failure(writeImage(ctx({ url: `${base}/nope.raw`, target: t }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/HTTP 404/) });
    expect(await failure(writeImage(ctx({ url: `${base}/img.raw`, target: path.join(dir, "missing") }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/does not exist/) });
    expect(await failure(writeImage(ctx({ url: `${base}/img.raw`, target: disk("small", 1) }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/larger than the target/) });
    expect(await failure(writeImage(ctx({ url: `${base}/img.raw`, format: "qcow2", target: t }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/not supported/) });
  });

  it("calls an unreachable image server transient", async () => {
    const { c } = ctx({ url: "http://127.0.0.1:1/img.raw", target: disk("w4") });
    expect(await failure(writeImage(c))).toMatchObject({ transient: true });
  });
});

describe("wipe", () => {
  it("signatures: wipefs and zeroes the first and last MiB of a file-backed disk", async () => {
    const target = disk("d1");
    const { c } = ctx({ mode: "signatures", target });
    expect(await wipe(c)).toMatchObject({ target, mode: "signatures", sizeBytes: 8 << 20 });
    const b = fs.readFileSync(target);
    expect(b.subarray(0, 1 << 20).every((x) => x === 0)).toBe(true);
    expect(b.subarray(-(1 << 20)).every((x) => x === 0)).toBe(true);
    expect(b[4 << 20]).toBe(0xaa);
  });

  it("discard: a file cannot be discarded, so it is zeroed", async () => {
    const target = disk("d2", 3);
    expect(await wipe(ctx({ mode: "discard", target }).c)).toMatchObject({ discarded: false });
    expect(fs.readFileSync(target).every((x) => x === 0)).toBe(true);
  });

  it("refuses a bad mode permanently", async () => {
    expect(await failure(wipe(ctx({ mode: "shred", target: disk("d3", 1) }).c))).toMatchObject({ transient: false, message: expect.stringMatching(/^wipe: bad params: mode/) });
  });
});

/** Small real disk images: GPT + an ESP (FAT12, shim-like PE at the fallback path), and MBR with boot code. */
function firmwareImages() {
  const run = (cmd: string, args: string[], input?: string) => {
    const r = spawnSync(cmd, args, { input, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} failed or is missing (scripts/install-system-deps.sh test): ${r.error?.message ?? r.stderr}`);
  };
  const esp = path.join(dir, "esp.fat");
  fs.rmSync(esp, { force: true });
  run("mkfs.vfat", ["-C", "-F", "12", esp, "2048"]);
  run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"]);
  fs.writeFileSync(path.join(dir, "loader"), Buffer.concat([Buffer.from("MZ"), crypto.randomBytes(3000)]));
  run("mcopy", ["-i", esp, path.join(dir, "loader"), "::/EFI/BOOT/BOOTX64.EFI"]);
  const uefi = path.join(dir, "uefi.raw");
  fs.writeFileSync(uefi, Buffer.alloc(4 << 20));
  run("sfdisk", ["-q", uefi], "label: gpt\nstart=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n");
  const u = fs.readFileSync(uefi);
  fs.readFileSync(esp).copy(u, 2048 * 512);
  const bios = path.join(dir, "bios.raw");
  fs.writeFileSync(bios, Buffer.alloc(4 << 20));
  run("sfdisk", ["-q", bios], "label: dos\nstart=2048, size=4096, type=83, bootable\n");
  const b = fs.readFileSync(bios);
  b.fill(0xfa, 0, 440);
  files.set("uefi.raw.gz", zlib.gzipSync(u)).set("bios.raw.gz", zlib.gzipSync(b));
  return { uefi: u, bios: b };
}

describe("firmware: the deploy's wipe refuses an image the machine cannot boot; write_image makes a UEFI disk boot", () => {
  const uefiMachine = () => {
    const efi = fs.mkdtempSync(path.join(dir, "efi-"));
    return { efiDir: efi };
  };
  const biosMachine = { efiDir: "/nonexistent/rackhand-test-bios" };

  it("a BIOS-only image on a UEFI machine (and a UEFI-only one on BIOS) fails before the disk is touched, saying why", async () => {
    firmwareImages();
    const cases = [
      { image: "bios.raw.gz", fw: uefiMachine(), why: /cannot boot on this machine: it booted with UEFI firmware and the image has no EFI System Partition \(MBR, 1 partition, no EFI System Partition, BIOS boot code in the MBR\); nothing was written$/ },
      { image: "uefi.raw.gz", fw: biosMachine, why: /cannot boot on this machine: it booted with legacy BIOS firmware and the image has no BIOS boot code \(GPT, 1 partition, EFI System Partition #1 \(2 MiB\), no BIOS boot code\); nothing was written$/ },
      { image: "img.raw.gz", fw: uefiMachine(), why: /has no EFI System Partition \(no partition table \(no MBR signature/ },
    ];
    for (const k of cases) {
      const target = disk(`fw-${k.image}`);
      const { c } = ctx({ mode: "signatures", target, imageUrl: `${base}/${k.image}`, imageFormat: "raw.gz" }, { config: { ...ctx({}).c.config, ...k.fw } });
      const err = await failure(wipe(c));
      expect(err, k.image).toBeInstanceOf(StepFailure);
      expect(err!.transient).toBe(false);
      expect(err!.message).toMatch(k.why);
      // Nothing was written: the disk still holds its 0xAA pattern everywhere.
      expect(fs.readFileSync(target).every((x) => x === 0xaa)).toBe(true);
    }
  });

  it("a matching image passes the check (logged) and the wipe goes on", async () => {
    firmwareImages();
    for (const [image, fw, line] of [
      ["uefi.raw.gz", uefiMachine(), "image check: GPT, 1 partition, EFI System Partition #1 (2 MiB), no BIOS boot code; this machine booted with UEFI firmware: the image can boot on it"],
      ["bios.raw.gz", biosMachine, "image check: MBR, 1 partition, no EFI System Partition, BIOS boot code in the MBR; this machine booted with BIOS firmware: the image can boot on it"],
    ] as const) {
      const target = disk(`ok-${image}`);
      const { c, lines } = ctx({ mode: "signatures", target, imageUrl: `${base}/${image}`, imageFormat: "raw.gz" }, { config: { ...ctx({}).c.config, ...fw } });
      expect(await wipe(c)).toMatchObject({ target, image: { firmware: fw === biosMachine ? "bios" : "uefi" } });
      expect(lines).toContain(line);
      expect(lines.some((l) => l.startsWith("zeroed the first and last MiB"))).toBe(true);
    }
  });

  it("write_image on a UEFI machine checks the written ESP's fallback loader and logs why no NVRAM entry was made for a file", async () => {
    const { uefi } = firmwareImages();
    const target = disk("w-uefi");
    const sha256 = crypto.createHash("sha256").update(uefi).digest("hex");
    const { c, lines } = ctx({ url: `${base}/uefi.raw.gz`, sha256, target }, { config: { ...ctx({}).c.config, ...uefiMachine() } });
    const r = await writeImage(c);
    expect(r).toMatchObject({ verified: true, boot: { firmware: "uefi", esp: { partition: 1, fat: 12, loader: "\\EFI\\BOOT\\BOOTX64.EFI", loaderBytes: 3002 }, nvram: "skipped: target is a file" } });
    expect(lines).toContain(`ESP check: partition 1 of ${target} (FAT12) holds \\EFI\\BOOT\\BOOTX64.EFI (3002 bytes, an EFI executable): UEFI can boot it by the fallback path`);
    expect(lines).toContain(`efibootmgr: skipped: ${target} is a file, not a disk`);
    // On BIOS: one line, no ESP check.
    const b = ctx({ url: `${base}/uefi.raw.gz`, sha256, target }, { config: { ...ctx({}).c.config, ...biosMachine } });
    expect(await writeImage(b.c)).toMatchObject({ boot: { firmware: "bios", nvram: "none: BIOS" } });
    expect(b.lines.some((l) => /^firmware: no .*: this machine boots with legacy BIOS; no EFI System Partition check, no NVRAM boot entry$/.test(l))).toBe(true);
  });

  it("write_image on a UEFI machine fails permanently when the written image's ESP lacks the loader", async () => {
    const { uefi } = firmwareImages();
    const broken = Buffer.from(uefi);
    // Rename BOOTX64.EFI in its directory entry: the ESP is still there, the loader is not.
    const at = broken.indexOf(Buffer.from("BOOTX64 EFI"));
    expect(at).toBeGreaterThan(0);
    broken.write("BOOTIA32", at, "latin1");
    files.set("broken.raw", broken);
    const target = disk("w-broken");
    const { c } = ctx({ url: `${base}/broken.raw`, target }, { config: { ...ctx({}).c.config, ...uefiMachine() } });
    const err = await failure(writeImage(c));
    expect(err?.transient).toBe(false);
    expect(err?.message).toBe(`the EFI System Partition (#1) of ${target} has no loader at \\EFI\\BOOT\\BOOTX64.EFI: \\EFI\\BOOT\\BOOTX64.EFI not found`);
  });
});

describe("raid", () => {
  it("validates the spec and builds mdadm arguments as an array", () => {
    const spec = raidSpec.parse({ level: 10, devices: ["/dev/sda", "/dev/sdb"], name: "root" });
    expect(mdadmCreateArgs(spec)).toEqual(["--create", "/dev/md/root", "--run", "--level=10", "--raid-devices=2", "--metadata=1.2", "--homehost=any", "/dev/sda", "/dev/sdb"]);
    for (const bad of [
      { level: 5, devices: ["/dev/sda", "/dev/sdb"], name: "r" },
      { level: 1, devices: ["/dev/sda"], name: "r" },
      { level: 1, devices: ["/dev/sda", "/dev/sda"], name: "r" },
      { level: 1, devices: ["/dev/sda", "/dev/../etc/passwd"], name: "r" },
      { level: 1, devices: ["/dev/sda", "/dev/sdb"], name: "a b; rm -rf /" },
    ]) {
      expect(raidSpec.safeParse(bad).success).toBe(false);
    }
  });

  it("fails permanently on a bad spec or a missing device, before running mdadm", async () => {
    expect(await failure(raid(ctx({ spec: { level: 5, devices: ["/dev/a", "/dev/b"], name: "x" } }).c))).toMatchObject({ transient: false });
    expect(await failure(raid(ctx({ spec: { level: 1, devices: ["/dev/rh-none-1", "/dev/rh-none-2"], name: "x" } }).c))).toMatchObject({
      transient: false,
      message: "raid: device /dev/rh-none-1 does not exist",
    });
  });
});

describe("run_script", () => {
  it("streams stdout and stderr as log lines", async () => {
    const { c, lines } = ctx({ script: "echo out-1\necho err-1 >&2\necho out-2\n" });
    expect(await runScript(c)).toMatchObject({ exitCode: 0 });
    expect(lines).toEqual(expect.arrayContaining(["out-1", "err-1", "out-2"]));
    expect(lines.join("\n")).not.toContain("echo out-1"); // the script's text is not logged
  });

  it("a non-zero exit is permanent; a timeout kills the whole process group and is transient", async () => {
    expect(await failure(runScript(ctx({ script: "echo nope >&2; exit 3" }).c))).toMatchObject({ transient: false, message: "script exited with code 3: nope" });
    const pidFile = path.join(dir, "grandchild.pid");
    const started = Date.now();
    const f = await failure(runScript(ctx({ script: `sleep 30 & echo $! > ${pidFile}; wait`, timeoutS: 0.5 }).c));
    expect(f).toMatchObject({ transient: true, message: expect.stringMatching(/timed out/) });
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(fs.readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    // The background sleep died with its group (gone, or a zombie where PID 1 does not reap orphans).
    const state = fs.existsSync(`/proc/${grandchild}/stat`) ? fs.readFileSync(`/proc/${grandchild}/stat`, "utf8").split(") ")[1]![0] : "gone";
    expect(["gone", "Z", "X"]).toContain(state);
  });
});

describe("configure_network", () => {
  it("skips without files, writes files atomically with their modes into a mounted root", async () => {
    expect(await configureNetwork(ctx({ osFamily: "debian" }).c)).toEqual({ skipped: expect.any(String) });
    const root = fs.mkdtempSync(path.join(dir, "root-"));
    const files = [
      { path: "/etc/network/interfaces", content: "auto eth0\n", mode: 0o644 },
      { path: "/etc/NetworkManager/system-connections/eth0.nmconnection", content: "[connection]\n", mode: 0o600 },
    ];
    const { c, lines } = ctx({ osFamily: "debian", rootPartition: root, files });
    expect(await configureNetwork(c)).toEqual({ osFamily: "debian", written: files.map((f) => f.path) });
    expect(fs.readFileSync(path.join(root, "etc/network/interfaces"), "utf8")).toBe("auto eth0\n");
    expect(fs.statSync(path.join(root, files[1]!.path)).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(root, "etc/network"))).toEqual(["interfaces"]);
    expect(lines.join("\n")).not.toContain("[connection]");
    const escape = ctx({ rootPartition: root, files: [{ path: "/etc/../../x", content: "" }] }).c;
    expect(await failure(configureNetwork(escape))).toMatchObject({ transient: false });
  });
});

describe("inventory parsers", () => {
  it("reads /proc/cpuinfo and /proc/meminfo", () => {
    const cpuinfo = [0, 1, 2, 3]
      .map((i) => `processor\t: ${i}\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: ${i >> 1}\nflags\t\t: fpu vmx aes\n`)
      .join("\n");
    expect(parseCpuinfo(cpuinfo)).toEqual({ model: "Test CPU", sockets: 1, cores: 2, threads: 4, flags: ["vmx", "aes"] });
    expect(parseMemTotal("MemTotal:        2048000 kB\nMemFree: 1 kB\n")).toBe(2048000 * 1024);
  });
});
