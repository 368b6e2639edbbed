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
    config: { ...parseArgs(["--api", "http://127.0.0.1:1", "--mac", "52:54:00:00:00:01"]), targetDisk: null },
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
    expect(lines.at(-1)).toMatch(/^verified: /);
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
