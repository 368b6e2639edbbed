/**
 * Test helpers for the agent as a real process: build dist-like agent bundles, make disk images, serve them
 * over HTTP (with injected failures and throttling), spawn the agent. Used by *.int.test.ts only.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { buildAgent } from "../../../scripts/build-agent.mjs";
import type { Domain } from "../../context";
import { currentAgentNonce } from "../../netboot/agent-nonce";
import { until as waitUntil } from "../../testing/until";

/** Bundle agent/main.ts into `dir`/agent.mjs with scripts/build-agent.mjs (byte-identical to dist/agent.mjs). */
export async function buildAgentBundle(dir: string): Promise<string> {
  return buildAgent(path.join(dir, "agent.mjs"));
}

export interface TestImage {
  sizeBytes: number;
  sha256: string;
  /** name → compressed file content */
  files: Map<string, Buffer>;
}

/**
 * A raw disk image of random data with a zeroed stretch (so it compresses a little), plus .gz/.xz/.zst. Its first
 * sector is an MBR with (random) boot code and one active partition, so the deploy's firmware check takes it for a
 * BIOS-bootable disk, as the test hosts boot the agent without UEFI.
 */
export function makeImage(dir: string, sizeMiB: number): TestImage {
  const raw = crypto.randomBytes(sizeMiB << 20);
  raw.fill(0, 440, 512);
  raw.set([0x80, 0, 0, 0, 0x83, 0, 0, 0], 446); // active, type 0x83 (Linux)
  raw.writeUInt32LE(2048, 446 + 8);
  raw.writeUInt32LE((sizeMiB << 11) - 2048, 446 + 12);
  raw.writeUInt16LE(0xaa55, 510);
  raw.fill(0, 1 << 20, (1 << 20) + (256 << 10));
  const rawPath = path.join(dir, "disk.raw");
  fs.writeFileSync(rawPath, raw);
  const files = new Map<string, Buffer>([
    ["disk.raw", raw],
    ["disk.raw.gz", zlib.gzipSync(raw, { level: 1 })],
  ]);
  // The tools must exist: a missing xz/zstd fails the test instead of skipping it.
  for (const [tool, ext] of [["xz", "xz"], ["zstd", "zst"]] as const) {
    const r = spawnSync(tool, ["-c", "-1", rawPath], { maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`${tool} failed or is not installed: ${r.error?.message ?? r.stderr?.toString()}`);
    files.set(`disk.raw.${ext}`, r.stdout);
  }
  return { sizeBytes: raw.length, sha256: crypto.createHash("sha256").update(raw).digest("hex"), files };
}

export interface ImageServer {
  url: string;
  /** Answer the next `count` requests for `name` with `status`. */
  failNext(name: string, status: number, count?: number): void;
  /** Send at most `bytesPerTick` every `tickMs` (0 = full speed). */
  throttle(bytesPerTick: number, tickMs: number): void;
  requests: string[];
  close(): Promise<void>;
}

export async function serveImages(files: Map<string, Buffer>): Promise<ImageServer> {
  const failures = new Map<string, { status: number; count: number }>();
  const requests: string[] = [];
  let rate = { bytes: 0, tickMs: 0 };
  const server = http.createServer((req, res) => {
    const name = (req.url ?? "/").slice(1);
    requests.push(name);
    const fail = failures.get(name);
    if (fail && fail.count > 0) {
      fail.count--;
      res.writeHead(fail.status).end("injected failure");
      return;
    }
    const body = files.get(name);
    if (!body) return void res.writeHead(404).end("no such image");
    res.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" });
    if (!rate.tickMs) return void res.end(body);
    let off = 0;
    const send = () => {
      if (res.destroyed) return;
      const chunk = body.subarray(off, off + rate.bytes);
      off += chunk.length;
      if (off >= body.length) return void res.end(chunk);
      res.write(chunk);
      setTimeout(send, rate.tickMs);
    };
    send();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    failNext: (name, status, count = 1) => failures.set(name, { status, count }),
    throttle: (bytes, tickMs) => (rate = { bytes, tickMs }),
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A sparse file standing in for a disk, filled with 0xAA at its start so a write is visible. */
export function makeDisk(dir: string, name: string, sizeMiB: number): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(1 << 20, 0xaa));
  fs.truncateSync(p, sizeMiB << 20);
  return p;
}

export function sha256OfPrefix(file: string, length: number): string {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, 0);
    return crypto.createHash("sha256").update(buf).digest("hex");
  } finally {
    fs.closeSync(fd);
  }
}

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

/**
 * Run the bundled agent for one job (`--once`), against `api`, on a file-backed disk, never rebooting. It acts as a
 * BIOS machine (an --efi-dir that does not exist) unless `extra` names another, whatever firmware the host has.
 */
export function spawnAgent(bundle: string, api: string, mac: string, disk: string, extra: string[] = []): AgentProcess {
  const firmware = extra.includes("--efi-dir") ? [] : ["--efi-dir", "/nonexistent/rackhand-test-bios"];
  const child = spawn(
    process.execPath,
    [bundle, "--api", api, "--mac", mac, "--once", "--target-disk", disk, "--no-reboot", "--retry-max-ms", "300", "--wait-s", "5", ...firmware, ...extra],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, exited, output: () => out };
}

/**
 * `--nonce <hex>`: the per-boot lookup secret of the machine's current agent boot entry (what the real agent reads
 * from rackhand.nonce= on /proc/cmdline). @throws Error when the machine does not netboot the agent now
 */
export async function agentNonceArgs(d: Pick<Domain, "db" | "store" | "secrets">, machineId: number): Promise<string[]> {
  const nonce = await currentAgentNonce(d, machineId);
  if (!nonce) throw new Error(`machine ${machineId} has no agent boot entry (not inspecting, deploying or cleaning)`);
  return ["--nonce", nonce];
}

/** server/testing/until.ts with a longer default: agent runs include process starts and image writes. */
export function until<T>(what: string, f: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 15_000): Promise<T> {
  return waitUntil(what, f, timeoutMs);
}
