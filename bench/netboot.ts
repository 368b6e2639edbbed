/**
 * npm run bench:netboot — netboot figures for docs/BENCHMARKS.md (a benchmark, not a test):
 *   1. reconcile 10,000 machines into an empty boot tree (target ≤ 2 s)
 *   2. one machine's change, incremental (target ≤ 10 ms)
 *   3. enroll → managed dnsmasq serving the reservation to a real DHCP client in a network namespace (target ≤ 1 s)
 * Needs root, iproute2, dnsmasq and busybox for part 3. Creates only rhnbb<pid>* namespaces and removes them.
 */
import { writeSection } from "./lib/sections";
import { createOobRuntime, defaultOobConfig } from "../server/oob/registry";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SecretBox } from "../server/auth/secrets";
import type { Domain } from "../server/context";
import { openDatabase } from "../server/db/client";
import { EventBus } from "../server/events/bus";
import { silentLogger } from "../server/log";
import { enrollMany } from "../server/machines/bulk-enroll";
import { enrollMachine } from "../server/machines/enroll";
import { transition } from "../server/machines/lifecycle";
import { NetbootService } from "../server/netboot/service";
import { getNetbootSettings, saveNetbootSettings } from "../server/netboot/settings";
import { median } from "./lib/stats";

const N = Number(process.env.BENCH_MACHINES ?? 10_000);
const hex = (n: number) => (n & 0xff).toString(16).padStart(2, "0");

function domainIn(dir: string): Domain {
  return {
    db: openDatabase(path.join(dir, "rackhand.db")),
    bus: new EventBus(),
    secrets: SecretBox.open(dir),
    log: silentLogger,
    oob: createOobRuntime(defaultOobConfig(dir, {})),
  };
}

async function treeFigures(): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-bench-nb-"));
  try {
    const d = domainIn(dir);
    saveNetbootSettings(d, { mode: "external", interface: "eth1", serverAddress: "10.0.0.1", netmask: "255.255.0.0", rangeStart: "10.0.250.1", rangeEnd: "10.0.250.200", httpBaseUrl: "http://10.0.0.1:3000" }, "bench");
    const inputs = Array.from({ length: N }, (_, i) => ({ name: `node-${i}`, bootMac: `52:54:01:00:${hex(i >> 8)}:${hex(i)}`, ip: `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, uHeight: 1 }));
    enrollMany(d, inputs, "bench");
    const nb = new NetbootService(d, { dataDir: dir });
    const ctx = nb.context(getNetbootSettings(d.db));
    const t0 = performance.now();
    const full = nb.reconcileAll(ctx);
    const fullMs = performance.now() - t0;
    const t1 = performance.now();
    const again = nb.reconcileAll(ctx);
    const idemMs = performance.now() - t1;
    const one: number[] = [];
    for (let i = 0; i < 21; i++) {
      const id = 1 + i;
      await transition(d, id, "manage", { actor: "bench" });
      const t = performance.now();
      nb.reconcileSome([id], ctx);
      one.push(performance.now() - t);
    }
    d.db.$client.close();
    return [
      `| reconcile ${N.toLocaleString("en")} machines into an empty tree (${full.written.length.toLocaleString("en")} files) | ${fullMs.toFixed(0)} ms | ≤ 2 s |`,
      `| same, nothing changed (idempotent, ${again.written.length} written) | ${idemMs.toFixed(0)} ms | — |`,
      `| one machine's state change, incremental (median of 21) | ${median(one).toFixed(2)} ms | ≤ 10 ms |`,
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function enrollToLease(): Promise<string[]> {
  const P = `rhnbb${process.pid}`;
  const [nsS, nsC, vS, vC] = [`${P}s`, `${P}c`, `${P}a`, `${P}b`];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-bench-nb-"));
  const ip = (...a: string[]) => execFileSync("ip", a);
  let nb: NetbootService | null = null;
  try {
    ip("netns", "add", nsS);
    ip("netns", "add", nsC);
    ip("link", "add", vS, "netns", nsS, "type", "veth", "peer", "name", vC, "netns", nsC);
    ip("-n", nsS, "addr", "add", "10.213.78.1/24", "dev", vS);
    ip("-n", nsS, "link", "set", vS, "up");
    ip("-n", nsC, "link", "set", vC, "up");
    const d = domainIn(dir);
    saveNetbootSettings(d, { mode: "managed", interface: vS, serverAddress: "10.213.78.1", rangeStart: "10.213.78.100", rangeEnd: "10.213.78.150", httpBaseUrl: "http://10.213.78.1:3000" }, "bench");
    const lines: { t: number; l: string }[] = [];
    nb = new NetbootService(d, { dataDir: dir, dnsmasqCommand: ["ip", "netns", "exec", nsS, "dnsmasq"], onDnsmasqLine: (l) => lines.push({ t: performance.now(), l }) });
    await nb.start();
    while (!lines.some((x) => x.l.includes("TFTP root"))) await new Promise((r) => setTimeout(r, 10));
    const read: number[] = [];
    const lease: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const mac = `52:54:00:7c:00:${hex(i)}`;
      const t0 = performance.now();
      await enrollMachine(d, { name: `bench-${i}`, bootMac: mac, ip: `10.213.78.${10 + i}`, uHeight: 1 }, "bench");
      const file = mac.replaceAll(":", "-");
      while (!lines.some((x) => x.l.includes(file) && x.t >= t0)) await new Promise((r) => setImmediate(r));
      read.push(lines.find((x) => x.l.includes(file) && x.t >= t0)!.t - t0);
      ip("-n", nsC, "link", "set", vC, "address", mac);
      const r = spawnSync("ip", ["netns", "exec", nsC, "busybox", "udhcpc", "-i", vC, "-s", "/bin/true", "-q", "-n", "-t", "3", "-T", "1"], { encoding: "utf8" });
      const ok = (r.stdout + r.stderr).includes(`lease of 10.213.78.${10 + i} obtained`);
      if (!ok) throw new Error(`no reserved lease for ${mac}: ${r.stdout}${r.stderr}`);
      lease.push(performance.now() - t0);
    }
    await nb.stop();
    nb = null;
    d.db.$client.close();
    return [
      `| enroll → dnsmasq has read the new host file (inotify; 50 ms debounce included; median of 5) | ${median(read).toFixed(0)} ms | — |`,
      `| enroll → a real DHCP client holds the reserved address (busybox udhcpc; median of 5) | ${median(lease).toFixed(0)} ms | ≤ 1 s |`,
    ];
  } finally {
    await nb?.stop();
    spawnSync("ip", ["netns", "del", nsS]);
    spawnSync("ip", ["netns", "del", nsC]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [...(await treeFigures()), ...(await enrollToLease())];
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const section = `## Netboot (npm run bench:netboot)\n\n${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os.cpus().length} × ${cpu}, tmpfs-less /tmp on the container's disk.\n\n| measurement | result | target |\n|---|---|---|\n${rows.join("\n")}\n`;
console.log(`\n${section}`);
writeSection(path.resolve("docs/BENCHMARKS.md"), "netboot", section);
