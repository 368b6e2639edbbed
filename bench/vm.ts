/**
 * npm run bench:vm — the full deploy on QEMU VMs (TCG) timed from the deploy click, for one VM and for 3 VMs in
 * parallel, phase by phase (lab/phases.ts), next to each phase's floor (bench/lib/vm-floors.ts) and the
 * hand-driven chain of ../shared/lab/ramdisk (29.1 s power-on → marker; target for one VM: ≤ 1.25×).
 * A benchmark, not a test: results go to docs/BENCHMARKS.md (section "vm").
 *
 * One virtual rack of 3 VMs (prefix rbv, 10.199.0.0/24, state in <tmp>/rackhand-bench-vm) serves every run. Each
 * run starts a fresh in-process Rackhand (new data directory; the VMs enrolled, managed and provided through
 * tRPC), blanks the VMs' disks while they are off, clicks deploy (machines.action, as the UI does) and waits for
 * the installed OS's marker; the stand-in OS powers itself off afterwards.
 * Then the rows per firmware (bench/lib/vm-firmware.ts): a second rack of a BIOS, a UEFI and a Secure Boot VM
 * (prefix rbf, 10.198.0.0/24), the three clicked at once and timed to the agent's lookup, next to each chain booted directly;
 * section "vm-firmware".
 * Environment: BENCH_VM_RUNS_ONE (3), BENCH_VM_RUNS_THREE (2), BENCH_VM_FLOOR_RUNS (2), BENCH_VM_FW_RUNS (3),
 * BENCH_VM_FW_FLOOR_RUNS (2), BENCH_VM_PARTS (deploy,firmware: which parts run), BENCH_VM_KEEP=1 keeps the
 * state directory. Needs root and the lab's tools (scripts/install-system-deps.sh test). Removes everything it
 * created, also on failure and on SIGINT/SIGTERM: its app (dnsmasq), QEMUs and the rack (rackDown).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import type { LabArtifacts } from "../lab/artifacts";
import { ConsoleWatch } from "../lab/console-watch";
import { deployConsolePatterns, deployTimeline, firstDhcpAck } from "../lab/phases";
import type { ProvisionedNode } from "../lab/provision";
import { startLabRackhand, stepSummary, waitForJob, type LabRackhand } from "../lab/rackhand";
import { nodeIpmitool, rackDown, rackUp, requireLabTools, VM_FIRMWARES, vmRunning, type RackState } from "../lab/rack";
import { machines } from "../server/db/schema";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { until } from "../server/testing/until";
import { machineInfo, probeIdle } from "./lib/report";
import { writeSection } from "./lib/sections";
import { measureFloors, type DirectVm, type FloorRun } from "./lib/vm-floors";
import { AGENT_PAYLOAD_FILE } from "../lib/netboot";
import { FW_MARKER, renderFirmwareSection, runFirmwareBench } from "./lib/vm-firmware";
import { renderVmSection, type RunResult, type ScenarioResult } from "./lib/vm-report";

const RUNS_ONE = Number(process.env.BENCH_VM_RUNS_ONE ?? 3);
const RUNS_THREE = Number(process.env.BENCH_VM_RUNS_THREE ?? 2);
const FLOOR_RUNS = Number(process.env.BENCH_VM_FLOOR_RUNS ?? 2);
const FW_RUNS = Number(process.env.BENCH_VM_FW_RUNS ?? 3);
const FW_FLOOR_RUNS = Number(process.env.BENCH_VM_FW_FLOOR_RUNS ?? 2);
const PARTS = new Set((process.env.BENCH_VM_PARTS ?? "deploy,firmware").split(",").map((x) => x.trim()));
const MARKER = FW_MARKER;
const PASSWORD = "bench-vm-admin-password";
const MEM_MIB = 512;
const DISK_MIB = 128;
// Fixed, so that the next run's rackUp removes what a killed run left (rackDown of the same state directory).
const STATE = path.join(os.tmpdir(), "rackhand-bench-vm");
const RACK = { dir: path.join(STATE, "rack"), prefix: "rbv", net: "10.199.0" };
const FW_RACK = { dir: path.join(STATE, "fw-rack"), prefix: "rbf", net: "10.198.0" };
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache"); // shared with the VM test: the RAM disk is built once

/**
 * Undo actions registered while the bench runs, run newest first, once: the first run() (end of main, or a
 * signal) does the work and every later call waits for the same promise.
 */
class Cleanup {
  private readonly fns = new Set<() => Promise<void>>();
  private done: Promise<void> | null = null;
  /** Cleanup has begun (a signal): start nothing new. */
  get stopping(): boolean {
    return this.done !== null;
  }
  add(fn: () => Promise<void>): () => void {
    if (this.stopping) throw new Error("interrupted: cleaning up");
    this.fns.add(fn);
    return () => void this.fns.delete(fn);
  }
  run(): Promise<void> {
    this.done ??= (async () => {
      for (const fn of [...this.fns].reverse()) {
        this.fns.delete(fn);
        await fn().catch((e: Error) => console.error(`cleanup: ${e.message}`));
      }
    })();
    return this.done;
  }
}

type Session = LabRackhand;

/** A fresh Rackhand in this process (lab/rackhand.ts), closed by the cleanup too should the bench be interrupted. */
async function openRackhand(dir: string, rack: RackState, agent: string, cleanup: Cleanup, imageFirmware?: "both"): Promise<Session> {
  const s = await startLabRackhand({ dir, rack, agent, cacheDir, marker: MARKER, adminPassword: PASSWORD, nodeEnv: "production", imageFirmware });
  let untrack: () => void;
  try {
    untrack = cleanup.add(() => s.close()); // stops dnsmasq before the netns goes
  } catch (err) {
    await s.close();
    throw err;
  }
  return {
    ...s,
    close: async () => {
      untrack();
      await s.close();
    },
  };
}

/**
 * The rack's VMs are all off (the stand-in OS powers itself off after its marker; after a failed run the BMC powers
 * off what is still running), then their disks are blanked.
 */
async function resetVms(rack: RackState): Promise<void> {
  const allOff = () => rack.nodes.every((n) => !vmRunning(n));
  await until("the rack's VMs to power themselves off", allOff, 30_000).catch(() => {
    for (const n of rack.nodes.filter(vmRunning)) nodeIpmitool(n, ["chassis", "power", "off"]);
  });
  await until("the rack's VMs to be off", allOff, 30_000);
  for (const n of rack.nodes) {
    fs.truncateSync(n.disk, 0);
    fs.truncateSync(n.disk, DISK_MIB << 20);
  }
}

async function deployRun(s: Session, targets: ProvisionedNode[]): Promise<Omit<RunResult, "loadAtStart">> {
  const watches = targets.map((p) => new ConsoleWatch(p.node.consoleLog, deployConsolePatterns(MARKER)));
  const cpu0 = process.cpuUsage();
  let rssPeak = process.memoryUsage().rss;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 250);
  try {
    const started = await Promise.all(
      targets.map(async (p) => {
        const clickAt = Date.now();
        const { jobId } = (await s.client.machines.action.mutate({ id: p.machineId, action: "deploy" })) as { jobId?: number };
        if (!jobId) throw new Error(`deploy of ${p.node.name} started no job`);
        return { p, clickAt, jobId };
      }),
    );
    const db = s.app.domain.db;
    for (const { p, jobId } of started) {
      const { job, steps: st } = await waitForJob(s.app, jobId, 480_000);
      if (job.state !== "succeeded") throw new Error(`${p.node.name}: deploy job ${job.state}: ${job.error}\n${stepSummary(st)}`);
      const state = db.select({ state: machines.state }).from(machines).where(eq(machines.id, p.machineId)).get()?.state;
      if (state !== "deployed") throw new Error(`${p.node.name} is ${state} after its deploy job succeeded`);
    }
    for (const w of watches) await w.waitFor("osUp", 180_000);
    const cpu = process.cpuUsage(cpu0);
    const timelines = started.map(({ p, clickAt, jobId }, i) =>
      deployTimeline({ db, jobId, mac: p.node.mac, clickAt, serverLog: s.serverLog, consoleSeen: watches[i]!.seen }),
    );
    const first = Math.min(...timelines.map((t) => t.clickAt));
    return {
      timelines,
      allUpMs: Math.max(...timelines.map((t) => t.ends.osUp ?? NaN)) - first,
      allDeployedMs: Math.max(...timelines.map((t) => t.jobFinishedAt ?? NaN)) - first,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssPeakMiB: rssPeak / 2 ** 20,
    };
  } finally {
    clearInterval(sampler);
    for (const w of watches) w.stop();
  }
}

async function scenario(name: string, runs: number, nodes: number, rack: RackState, agent: string, cleanup: Cleanup): Promise<ScenarioResult> {
  const out: ScenarioResult = { name, nodes, runs: [], errors: [] };
  for (let r = 1; r <= runs && !cleanup.stopping; r++) {
    await resetVms(rack);
    const s = await openRackhand(path.join(STATE, `${name}-${r}`), rack, agent, cleanup);
    try {
      const load = os.loadavg()[0]!;
      const res = await deployRun(s, s.machines.slice(0, nodes));
      out.runs.push({ ...res, loadAtStart: load });
      console.log(`${name} run ${r}: all deployed ${(res.allDeployedMs / 1000).toFixed(1)} s, all at the marker ${(res.allUpMs / 1000).toFixed(1)} s`);
    } catch (err) {
      out.errors.push((err as Error).message);
      console.error(`${name} run ${r} failed: ${(err as Error).message}`);
    } finally {
      await s.close();
    }
  }
  return out;
}

async function floors(rack: RackState, agent: string, cleanup: Cleanup): Promise<{ runs: FloorRun[]; artifacts: LabArtifacts }> {
  await resetVms(rack);
  const s = await openRackhand(path.join(STATE, "floors"), rack, agent, cleanup);
  const node = rack.nodes.at(-1)!; // its VM stays off meanwhile: the floor VMs borrow its tap and MAC
  // A hard link: another checkout sharing the cache may prune this build while the floors run.
  const osImage = path.join(STATE, "floor-os.img");
  fs.rmSync(osImage, { force: true });
  fs.linkSync(s.artifacts.image.raw, osImage);
  const runs: FloorRun[] = [];
  try {
    for (let i = 0; i < FLOOR_RUNS && !cleanup.stopping; i++) {
      const f = await measureFloors({
        memMiB: MEM_MIB,
        tap: `${rack.prefix}t${node.index}`,
        mac: node.mac,
        vmlinuz: path.join(s.artifacts.ramdisk.dir, "vmlinuz"),
        initrd: path.join(s.artifacts.ramdisk.dir, "initrd.img"),
        osImage,
        marker: MARKER,
        imageBytes: s.artifacts.image.size,
        scratchDisk: path.join(STATE, "floor-disk.img"),
        dhcpAckSince: (mac, since) => firstDhcpAck(s.serverLog, mac, since),
        track: (vm: DirectVm) => cleanup.add(() => vm.stop()),
      });
      console.log(`floors ${i + 1}: ${JSON.stringify(f)}`);
      runs.push(f);
    }
  } finally {
    await s.close();
  }
  return { runs, artifacts: s.artifacts };
}

async function main(): Promise<void> {
  requireLabTools();
  const idle = await probeIdle();
  const began = Date.now();
  fs.mkdirSync(STATE, { recursive: true });
  const cleanup = new Cleanup();
  // `on`, not `once`: npm and tsx relay the terminal's SIGINT, so a second one arrives while cleaning up.
  const onSignal = (sig: NodeJS.Signals) => {
    if (cleanup.stopping) return;
    console.error(`${sig}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Registered first, so it runs last: the state directory holds rack.json, which rackDown reads.
  cleanup.add(async () => {
    if (process.env.BENCH_VM_KEEP === "1") console.log(`kept ${STATE}`);
    else fs.rmSync(STATE, { recursive: true, force: true });
  });
  cleanup.add(() => rackDown(RACK.dir));
  try {
    const agent = await buildAgentBundle(STATE);
    if (PARTS.has("deploy")) await deployPart(agent, cleanup, idle, began);
    if (PARTS.has("firmware") && !cleanup.stopping) await firmwarePart(agent, cleanup);
  } finally {
    await cleanup.run();
  }
}

async function deployPart(agent: string, cleanup: Cleanup, idle: Awaited<ReturnType<typeof probeIdle>>, began: number): Promise<void> {
  const rack = await rackUp({ ...RACK, nodes: 3, memMiB: MEM_MIB, diskMiB: DISK_MIB });
  const floorRuns = await floors(rack, agent, cleanup);
  const one = await scenario("one", RUNS_ONE, 1, rack, agent, cleanup);
  const three = await scenario("three", RUNS_THREE, 3, rack, agent, cleanup);
  if (cleanup.stopping) throw new Error("interrupted: nothing written");
  await resetVms(rack);
  const { image, ramdisk } = floorRuns.artifacts;
  const section = renderVmSection({
    date: new Date(),
    command: "npm run bench:vm",
    machine: machineInfo(),
    qemu: spawnSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]!.trim(),
    kvm: fs.existsSync("/dev/kvm"),
    idle,
    loadEnd: os.loadavg(),
    durationS: (Date.now() - began) / 1000,
    vm: { memMiB: MEM_MIB, diskMiB: DISK_MIB },
    image: { bytes: image.size, gzBytes: fs.statSync(image.gz).size },
    initrdBytes: fs.statSync(path.join(ramdisk.dir, "initrd.img")).size,
    floors: floorRuns.runs,
    scenarios: [one, three],
  });
  console.log(`\n${section}`);
  writeSection(path.resolve("docs/BENCHMARKS.md"), "vm", section);
  if (one.errors.length + three.errors.length > 0) process.exitCode = 1;
}

/** The rows per firmware on a rack of its own: BIOS, UEFI, Secure Boot (bench/lib/vm-firmware.ts). */
async function firmwarePart(agent: string, cleanup: Cleanup): Promise<void> {
  requireLabTools([...VM_FIRMWARES]);
  const idle = await probeIdle();
  const t0 = Date.now();
  cleanup.add(() => rackDown(FW_RACK.dir));
  const rack = await rackUp({ ...FW_RACK, nodes: VM_FIRMWARES.length, firmware: VM_FIRMWARES, memMiB: MEM_MIB, diskMiB: DISK_MIB });
  let initrdBytes = 0;
  let payloadBytes = 0;
  const result = await runFirmwareBench({
    rack,
    runs: FW_RUNS,
    floorRuns: FW_FLOOR_RUNS,
    stopping: () => cleanup.stopping,
    log: (l) => console.log(l),
    track: (stop) => cleanup.add(stop),
    open: async (name) => {
      // A fresh data directory: a kept state directory (BENCH_VM_KEEP=1) holds the last run's machines mid-deploy.
      fs.rmSync(path.join(STATE, name), { recursive: true, force: true });
      const s = await openRackhand(path.join(STATE, name), rack, agent, cleanup, "both");
      initrdBytes = fs.statSync(path.join(s.artifacts.ramdisk.dir, "initrd.img")).size;
      payloadBytes = fs.statSync(path.join(s.artifacts.ramdisk.dir, AGENT_PAYLOAD_FILE)).size;
      return s;
    },
  });
  if (cleanup.stopping) throw new Error("interrupted: nothing written");
  const dpkgVersion = (pkg: string) => spawnSync("dpkg-query", ["-W", "-f=${Version}", pkg], { encoding: "utf8" }).stdout.trim() || "unknown";
  const section = renderFirmwareSection({
    date: new Date(),
    machine: machineInfo(),
    qemu: spawnSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]!.trim(),
    ovmf: dpkgVersion("ovmf"),
    idle,
    loadEnd: os.loadavg(),
    durationS: (Date.now() - t0) / 1000,
    memMiB: MEM_MIB,
    initrdBytes,
    payloadBytes,
    result,
  });
  console.log(`\n${section}`);
  writeSection(path.resolve("docs/BENCHMARKS.md"), "vm-firmware", section);
  if (result.errors.length > 0) process.exitCode = 1;
}

await main();
