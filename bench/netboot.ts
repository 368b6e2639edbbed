/**
 * npm run bench:netboot — netboot figures for docs/BENCHMARKS.md (a benchmark, not a test):
 *   1. reconcile 10,000 machines into an empty boot tree (target ≤ 2 s), BENCH_ROUNDS times (default 3); also the
 *      worst case of every machine netbooting at once
 *   2. one machine's change, incremental (target ≤ 10 ms): starts netbooting, address changed, newly enrolled
 * BENCH_MACHINES=<n> for a smaller fleet while iterating; --tree-only skips part 3.
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
import { loadNetbootSettings, storeNetbootSettings } from "../server/netboot/settings";
import { storeOf } from "../server/db/store";
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

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" / ");

/** A full reconcile of every machine into a fresh, empty tree directory (what a first start does). */
async function fullInto(d: Domain, parent: string, round: number): Promise<{ ms: number; files: number; nb: NetbootService }> {
  const nb = new NetbootService(d, { dataDir: path.join(parent, `round-${round}`) });
  const ctx = nb.context(await loadNetbootSettings(storeOf(d)));
  const t0 = performance.now();
  const c = await nb.reconcileAll(ctx);
  return { ms: performance.now() - t0, files: c.written.length, nb };
}

async function treeFigures(): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-bench-nb-"));
  try {
    const d = domainIn(dir);
    await storeNetbootSettings(d, { mode: "external", interface: "eth1", serverAddress: "10.0.0.1", netmask: "255.255.0.0", rangeStart: "10.0.250.1", rangeEnd: "10.0.250.200", httpBaseUrl: "http://10.0.0.1:3000" }, "bench");
    const inputs = Array.from({ length: N }, (_, i) => ({ name: `node-${i}`, bootMac: `52:54:01:00:${hex(i >> 8)}:${hex(i)}`, ip: `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, uHeight: 1 }));
    await enrollMany(d, inputs, "bench");
    const loadBefore = load();
    // The fleet at rest (every machine boots its local disk): one hosts file, no per-MAC boot entries.
    const rest: number[] = [];
    let restFiles = 0;
    let nb!: NetbootService;
    for (let r = 0; r < ROUNDS; r++) {
      const x = await fullInto(d, dir, r);
      rest.push(x.ms);
      restFiles = x.files;
      nb = x.nb;
    }
    const ctx = nb.context(await loadNetbootSettings(storeOf(d)));
    const t1 = performance.now();
    const again = await nb.reconcileAll(ctx);
    const idemMs = performance.now() - t1;
    // Incremental, on the last round's tree: a machine starts netbooting (3 boot entries written) ...
    const one: number[] = [];
    for (let i = 0; i < 21; i++) {
      const id = 1 + i;
      await transition(d, id, "manage", { actor: "bench" });
      await transition(d, id, "inspect", { actor: "bench" });
      const t = performance.now();
      const c = await nb.reconcileSome([id], ctx);
      one.push(performance.now() - t);
      if (c.written.length !== 3) throw new Error(`expected 3 boot entries for machine ${id}, wrote ${c.written.join(", ")}`);
    }
    // ... a machine's reserved address changes (the hosts file of N lines rewritten, dnsmasq to be SIGHUP'd) ...
    const hostChange: number[] = [];
    for (let i = 0; i < 21; i++) {
      const id = 100 + i;
      d.db.$client.prepare("update nics set ip = ? where machine_id = ?").run(`10.200.0.${i + 1}`, id);
      const t = performance.now();
      const c = await nb.reconcileSome([id], ctx);
      hostChange.push(performance.now() - t);
      if (!c.hostsReload) throw new Error("an address change must rewrite the hosts file");
    }
    // ... a machine is enrolled (its own hosts.d file, read by dnsmasq on inotify).
    const added: number[] = [];
    for (let i = 0; i < 21; i++) {
      const m = await enrollMachine(d, { name: `new-${i}`, bootMac: `52:54:02:00:00:${hex(i)}`, uHeight: 1 }, "bench");
      const t = performance.now();
      await nb.reconcileSome([m.id], ctx);
      added.push(performance.now() - t);
    }
    // Worst case: every machine netbooting at once (3 boot entries each), into a fresh tree.
    d.db.$client.prepare("update machines set state = 'inspecting'").run();
    const worst: number[] = [];
    let worstFiles = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const x = await fullInto(d, dir, 100 + r);
      worst.push(x.ms);
      worstFiles = x.files;
    }
    const loadAfter = load();
    d.db.$client.close();
    const n = N.toLocaleString("en");
    return [
      `| reconcile ${n} machines at rest into an empty tree (${restFiles.toLocaleString("en")} files), ${ROUNDS} rounds | ${ms(rest)} ms (median ${median(rest).toFixed(0)}) | ≤ 2 s |`,
      `| same, nothing changed (idempotent, ${again.written.length} written) | ${idemMs.toFixed(0)} ms | — |`,
      `| one machine starts netbooting (3 boot entries), incremental (median of 21) | ${median(one).toFixed(2)} ms | ≤ 10 ms |`,
      `| one machine's address changes (hosts file of ${n} lines rewritten), incremental (median of 21) | ${median(hostChange).toFixed(2)} ms | ≤ 10 ms |`,
      `| one machine enrolled (its hosts.d file), incremental (median of 21) | ${median(added).toFixed(2)} ms | ≤ 10 ms |`,
      `| worst case: all ${n} machines netbooting, into an empty tree (${worstFiles.toLocaleString("en")} files), ${ROUNDS} rounds | ${ms(worst)} ms (median ${median(worst).toFixed(0)}) | — |`,
      `| load average (1/5/15 min) before → after the tree figures | ${loadBefore} → ${loadAfter} | — |`,
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
    await storeNetbootSettings(d, { mode: "managed", interface: vS, serverAddress: "10.213.78.1", rangeStart: "10.213.78.100", rangeEnd: "10.213.78.150", httpBaseUrl: "http://10.213.78.1:3000" }, "bench");
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

const rows = [...(await treeFigures()), ...(process.argv.includes("--tree-only") ? [] : await enrollToLease())];
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const section = `## Netboot (npm run bench:netboot)\n\n${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os.cpus().length} × ${cpu}, tmpfs-less /tmp on the container's disk; load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}.\n\n| measurement | result | target |\n|---|---|---|\n${rows.join("\n")}\n`;
console.log(`\n${section}`);
if (!process.argv.includes("--tree-only")) writeSection(path.resolve("docs/BENCHMARKS.md"), "netboot", section);
