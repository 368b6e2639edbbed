/**
 * npm run bench:vm, rows per firmware: the same deploy click on a BIOS VM (QEMU pc: SeaBIOS + QEMU's iPXE ROM →
 * boot.ipxe → kernel + RAM disk over HTTP), a UEFI VM (q35 + OVMF: its own PXE → shim → Debian's signed GRUB →
 * per-MAC entry → kernel + RAM disk over TFTP) and a Secure Boot VM (the same with OVMF's secboot code and
 * Microsoft's keys), timed phase by phase from the click to the installed OS's marker on the console. The BIOS VM
 * gets the BIOS stand-in image, the UEFI and Secure Boot VMs the UEFI one (ESP with shim + signed GRUB), each
 * through its own profile (lab/provision.ts).
 * The floor of each row, in two parts: the netboot (the same VM, same QEMU arguments, NIC first, started directly by
 * the bench while the machine is in `deploying`: its per-MAC boot entry in place, no job, no BMC, no orchestration),
 * timed from QEMU's start to the same console lines; and the boot from disk (the deployed disk, disk first, started
 * directly), QEMU's start → the marker. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { ConsoleWatch } from "../../lab/console-watch";
import { firstDhcpAck } from "../../lab/phases";
import type { ProvisionedNode } from "../../lab/provision";
import { stepSummary, type LabRackhand } from "../../lab/rackhand";
import { nodeIpmitool, vmRunning, type RackState, type VmFirmware } from "../../lab/rack";
import { jobs, steps } from "../../server/db/schema";
import { transition } from "../../server/machines/lifecycle";
import { until } from "../../server/testing/until";
import type { IdleProbe, MachineInfo } from "./report";
import { median } from "./stats";

/** Phase ends in order; each phase runs from the previous end (the click, or QEMU's start for a floor). */
export const FW_PHASES = [
  { key: "powerOn", label: "power-on (boot device pxe + power cycle done)" },
  { key: "dhcp", label: "firmware start + first DHCP lease (DHCPACK in dnsmasq's log)" },
  { key: "loader", label: "boot loader chain: BIOS iPXE → boot.ipxe → per-MAC script; UEFI shim + GRUB over TFTP → grub.cfg (`Rackhand:` echoed)" },
  { key: "kernel", label: "kernel + initrd fetched and started (`Linux version` on the console)" },
  { key: "ramdisk", label: "RAM disk up (`rackhand-init: lease`)" },
  { key: "payload", label: "agent payload fetched over HTTP, checked and unpacked (`rackhand-init: agent payload unpacked`)" },
  { key: "lookup", label: "agent lookup (wait_agent done)" },
  { key: "written", label: "image checked, written, ESP/boot entry done (write_image done)" },
  { key: "reboot", label: "rest of the job: configure, boot device disk + power cycle (job succeeded)" },
  { key: "marker", label: "firmware → boot loader on disk → kernel → the OS's marker on the console" },
] as const;
export type FwPhase = (typeof FW_PHASES)[number]["key"];

/** The stand-in OS prints this when it is up (bench/vm.ts builds the images with it). */
export const FW_MARKER = "RACKHAND-OS-UP";
const CONSOLE = { loader: /Rackhand: /, kernel: /Linux version /, ramdisk: /rackhand-init: lease/, payload: /rackhand-init: agent payload unpacked/, marker: new RegExp(FW_MARKER) };

export interface FwTimeline {
  firmware: VmFirmware;
  /** A floor only: QEMU's start from the deployed disk → the marker (ms). */
  diskBootMs?: number | null;
  /** Epoch ms of the click (deploy) or of QEMU's start (floor). */
  t0: number;
  ends: Record<FwPhase, number | null>;
}

export interface FirmwareBenchResult {
  runs: FwTimeline[];
  floors: FwTimeline[];
  errors: string[];
  loads: number[];
}

export interface FirmwareBenchInput {
  rack: RackState;
  /** A fresh Rackhand on the rack (its machines provided), closed by the caller's cleanup on interruption. */
  open: (name: string) => Promise<LabRackhand>;
  /** A started QEMU is registered for the caller's cleanup until stopped. */
  track: (stop: () => Promise<void>) => () => void;
  runs: number;
  floorRuns: number;
  stopping: () => boolean;
  log: (line: string) => void;
}

const epoch = (d: Date | null | undefined) => (d ? d.getTime() : null);

async function powerOffAll(rack: RackState): Promise<void> {
  for (const n of rack.nodes.filter(vmRunning)) nodeIpmitool(n, ["chassis", "power", "off"]);
  await until("the firmware rack's VMs to be off", () => rack.nodes.every((n) => !vmRunning(n)), 30_000);
}

/** One deploy click, timed to the installed OS's marker; the stand-in OS powers itself off after it. */
async function clickToMarker(s: LabRackhand, p: ProvisionedNode, firmware: VmFirmware): Promise<FwTimeline> {
  const db = s.app.domain.db;
  const watch = new ConsoleWatch(p.node.consoleLog, CONSOLE);
  const t0 = Date.now();
  const { jobId } = (await s.client.machines.action.mutate({ id: p.machineId, action: "deploy" })) as { jobId?: number };
  if (!jobId) throw new Error(`deploy of ${p.node.name} started no job`);
  const stepsOf = () => db.select().from(steps).where(eq(steps.jobId, jobId)).orderBy(asc(steps.id)).all();
  let ok = false;
  try {
    const job = await until(
      `${p.node.name} (${firmware}): the deploy job`,
      () => {
        const j = db.select().from(jobs).where(eq(jobs.id, jobId)).get();
        if (j && ["failed", "cancelled"].includes(j.state)) throw new Error(`${p.node.name} (${firmware}): deploy job ${j.state}: ${j.error}\n${stepSummary(stepsOf())}`);
        return j?.state === "succeeded" ? j : null;
      },
      1_500_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- console:\n${watch.text().slice(-2000)}`);
    });
    await watch.waitFor("marker", 600_000);
    ok = true;
    const all = stepsOf();
    const done = (name: string) => epoch(all.find((x) => x.name === name && x.state === "succeeded")?.finishedAt);
    const cycles = all.filter((x) => x.name === "power_cycle");
    return {
      firmware,
      t0,
      ends: {
        powerOn: epoch(cycles[0]?.finishedAt),
        dhcp: firstDhcpAck(s.serverLog, p.node.mac, t0),
        loader: watch.seen.loader ?? null,
        kernel: watch.seen.kernel ?? null,
        ramdisk: watch.seen.ramdisk ?? null,
        payload: watch.seen.payload ?? null,
        lookup: done("wait_agent"),
        written: done("write_image"),
        reboot: epoch(job.finishedAt),
        marker: watch.seen.marker ?? null,
      },
    };
  } finally {
    watch.stop();
    if (!ok) await s.client.jobs.cancel.mutate({ jobId }).catch(() => undefined);
    nodeIpmitool(p.node, ["chassis", "power", "off"]); // the stand-in OS powers off by itself; after a failure, at once
  }
}

/** QEMU with the node's own arguments (NIC first), started by this process: no BMC, no job. */
function startDirect(node: ProvisionedNode["node"], first: "net" | "disk" = "net"): { proc: ChildProcess; stop: () => Promise<void> } {
  const [net, disk] = first === "net" ? ["1", "2"] : ["2", "1"];
  const args = fs
    .readFileSync(path.join(node.dir, "qemu.args"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((a) => a.replaceAll("@BOOTINDEX_NET@", net).replaceAll("@BOOTINDEX_DISK@", disk));
  const proc = spawn("qemu-system-x86_64", [...args, ...(first === "net" ? ["-boot", "n"] : [])], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
      if (err.trim()) console.error(`floor QEMU of ${node.name}: ${err.trim().slice(-300)}`);
    },
  };
}

/** The floor: the machine put into `deploying` directly (its per-MAC agent entry rendered), the VM started directly. */
async function floorOnce(s: LabRackhand, p: ProvisionedNode, firmware: VmFirmware, track: FirmwareBenchInput["track"]): Promise<FwTimeline> {
  await transition(s.app.domain, p.machineId, "deploy", { actor: "bench" });
  const hy = p.node.mac.replaceAll(":", "-");
  const entry = path.join(s.dataDir, "netboot", "tftp", "ipxe", `${hy}.ipxe`);
  await until(`${p.node.name}'s agent boot entry`, () => fs.existsSync(entry) && fs.readFileSync(entry, "utf8").includes("rackhand.mode=deploying"), 30_000);
  const watch = new ConsoleWatch(p.node.consoleLog, CONSOLE);
  const vm = startDirect(p.node);
  const t0 = Date.now();
  const untrack = track(vm.stop);
  let netboot: FwTimeline;
  try {
    await watch.waitFor("payload", 900_000);
    netboot = {
      firmware,
      t0,
      ends: { powerOn: t0, dhcp: firstDhcpAck(s.serverLog, p.node.mac, t0), loader: watch.seen.loader ?? null, kernel: watch.seen.kernel ?? null, ramdisk: watch.seen.ramdisk!, payload: watch.seen.payload!, lookup: null, written: null, reboot: null, marker: null },
    };
  } finally {
    watch.stop();
    await vm.stop();
    untrack();
  }
  // The second part: the disk the click runs deployed, booted directly (disk first) up to the marker.
  const disk = new ConsoleWatch(p.node.consoleLog, CONSOLE);
  const vm2 = startDirect(p.node, "disk");
  const t1 = Date.now();
  const untrack2 = track(vm2.stop);
  try {
    await disk.waitFor("marker", 600_000);
    netboot.diskBootMs = disk.seen.marker! - t1;
  } finally {
    disk.stop();
    await vm2.stop();
    untrack2();
  }
  return netboot;
}

/**
 * Rounds of one click on each of the BIOS, UEFI and Secure Boot VMs, the three at once (on a shared 2-core host one
 * VM at a time takes three times as long and sees different load), then the floors, the three at once too.
 */
export async function runFirmwareBench(o: FirmwareBenchInput): Promise<FirmwareBenchResult> {
  const out: FirmwareBenchResult = { runs: [], floors: [], errors: [], loads: [] };
  const fwOf = (p: ProvisionedNode) => p.node.firmware ?? "bios";
  for (let r = 1; r <= o.runs && !o.stopping(); r++) {
    await powerOffAll(o.rack);
    const s = await o.open(`fw-${r}`);
    try {
      out.loads.push(os.loadavg()[0]!);
      await Promise.all(
        s.machines.map(async (p) => {
          try {
            const t = await clickToMarker(s, p, fwOf(p));
            out.runs.push(t);
            o.log(`firmware ${fwOf(p)} run ${r}: click → agent lookup ${(((t.ends.lookup ?? NaN) - t.t0) / 1000).toFixed(1)} s, → OS marker ${(((t.ends.marker ?? NaN) - t.t0) / 1000).toFixed(1)} s`);
          } catch (err) {
            out.errors.push(`${fwOf(p)} run ${r}: ${(err as Error).message}`);
            o.log(`firmware ${fwOf(p)} run ${r} failed: ${(err as Error).message}`);
          }
        }),
      );
    } finally {
      await powerOffAll(o.rack).catch(() => undefined);
      await s.close();
    }
  }
  for (let r = 1; r <= o.floorRuns && !o.stopping(); r++) {
    await powerOffAll(o.rack);
    const s = await o.open(`fw-floor-${r}`);
    try {
      await Promise.all(
        s.machines.map(async (p) => {
          try {
            const t = await floorOnce(s, p, fwOf(p), o.track);
            out.floors.push(t);
            o.log(`firmware ${fwOf(p)} floor ${r}: QEMU start → payload unpacked ${(((t.ends.payload ?? NaN) - t.t0) / 1000).toFixed(1)} s; disk → marker ${((t.diskBootMs ?? NaN) / 1000).toFixed(1)} s`);
          } catch (err) {
            out.errors.push(`${fwOf(p)} floor ${r}: ${(err as Error).message}`);
          }
        }),
      );
    } finally {
      await s.close();
    }
  }
  return out;
}

// ---------------------------------------------------------------- report

const NAMES: Record<VmFirmware, string> = { bios: "BIOS", uefi: "UEFI", secureboot: "UEFI + Secure Boot" };
/** UEFI and Secure Boot: click → the same point within this factor of BIOS, in the same run. */
export const FIRMWARE_TARGET = 1.3;

function durations(t: FwTimeline): Record<FwPhase, number> {
  const out = {} as Record<FwPhase, number>;
  let prev = t.t0;
  for (const { key } of FW_PHASES) {
    const end = t.ends[key];
    out[key] = end === null ? NaN : end - prev;
    if (end !== null) prev = end;
  }
  return out;
}
const to = (t: FwTimeline, k: FwPhase) => (t.ends[k] === null ? NaN : t.ends[k] - t.t0);

interface St {
  med: number;
  min: number;
  max: number;
  n: number;
}
function st(xs: number[]): St | null {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? { med: median(v), min: v[0]!, max: v.at(-1)!, n: v.length } : null;
}
const s1 = (ms: number) => (ms / 1000).toFixed(1);
const sec = (x: St | null) => (x ? `${s1(x.med)} s${x.n > 1 ? ` (${s1(x.min)}–${s1(x.max)})` : ""}` : "—");

export interface FirmwareReport {
  date: Date;
  machine: MachineInfo;
  qemu: string;
  ovmf: string;
  idle: IdleProbe;
  loadEnd: number[];
  durationS: number;
  memMiB: number;
  initrdBytes: number;
  payloadBytes: number;
  result: FirmwareBenchResult;
}

export function renderFirmwareSection(r: FirmwareReport): string {
  const fws: VmFirmware[] = ["bios", "uefi", "secureboot"];
  const runsOf = (fw: VmFirmware) => r.result.runs.filter((t) => t.firmware === fw);
  const floorsOf = (fw: VmFirmware) => r.result.floors.filter((t) => t.firmware === fw);
  const marker = (fw: VmFirmware) => st(runsOf(fw).map((t) => to(t, "marker")));
  const lookup = (fw: VmFirmware) => st(runsOf(fw).map((t) => to(t, "lookup")));
  // The floor of the whole chain: the netboot floor (QEMU start → payload unpacked) + the disk boot floor.
  const floorAll = (fw: VmFirmware) => st(floorsOf(fw).map((t) => to(t, "payload") + (t.diskBootMs ?? NaN)));
  const bios = marker("bios");
  const summary = fws.map((fw) => {
    const l = marker(fw);
    const ratio = l && bios ? l.med / bios.med : null;
    const f = floorAll(fw);
    const verdict = fw === "bios" ? "(reference)" : ratio === null ? "**FAIL** (not measured)" : ratio <= FIRMWARE_TARGET ? "**PASS**" : "**MISS**";
    return `| ${NAMES[fw]} | ${sec(l)} | ${ratio === null ? "—" : `${ratio.toFixed(2)}×`} | ${sec(lookup(fw))} | ${sec(f)} | ${l && f ? `${(l.med / f.med).toFixed(2)}×` : "—"} | ${fw === "bios" ? "—" : `≤ ${FIRMWARE_TARGET}× BIOS`} | ${verdict} |`;
  });
  const NO_FLOOR: FwPhase[] = ["powerOn", "lookup", "written", "reboot"];
  const phaseRows = FW_PHASES.map(({ key, label }) => {
    const cells = fws.map((fw) => {
      const d = sec(st(runsOf(fw).map((t) => durations(t)[key])));
      const f = NO_FLOOR.includes(key) ? "—" : key === "marker" ? sec(st(floorsOf(fw).map((t) => t.diskBootMs ?? NaN))) : sec(st(floorsOf(fw).map((t) => durations(t)[key])));
      return `${d} | ${f}`;
    });
    return `| ${label} | ${cells.join(" | ")} |`;
  });
  const errors = r.result.errors.map((e) => `- ${e.split("\n")[0]}`);
  const loads = r.result.loads;
  return [
    "## Deploy click → OS marker per firmware: BIOS, UEFI, Secure Boot (npm run bench:vm)",
    "",
    "Written by `bench/vm.ts` (`bench/lib/vm-firmware.ts`) on every run that includes the firmware rows (this section only).",
    "",
    `- **Date:** ${r.date.toISOString().replace("T", " ").slice(0, 19)} UTC; duration ${Math.round(r.durationS)} s`,
    "- **Command:** `BENCH_VM_PARTS=firmware npm run bench:vm` (as root; `npm run bench:vm` runs these rows after the BIOS deploy ones)" +
      `; ${r.result.runs.length} clicks, ${r.result.floors.length} floor boots`,
    `- **Machine:** ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGb} GB RAM, Node ${r.machine.node}, ${r.machine.os}`,
    `- **QEMU:** ${r.qemu}, TCG, 1 vCPU, ${r.memMiB} MiB, virtio NIC + virtio disk; OVMF ${r.ovmf}`,
    `- **Load:** before the start ${r.idle.busyPercent.toFixed(0)} % CPU busy over 2 s, load average ${r.idle.load.map((x) => x.toFixed(2)).join(" / ")}; 1-min load at each click ${loads.length ? `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}` : "—"}; at the end ${r.loadEnd.map((x) => x.toFixed(2)).join(" / ")}` +
      (r.idle.busyPercent > 15 ? " — **other work was running on the host: the figures are pessimistic**" : ""),
    "- **The VMs:** one virtual rack (prefix `rbf`, 10.198.0.0/24) of three VMs behind ipmi_sim BMCs: BIOS = QEMU `pc`, SeaBIOS and QEMU's iPXE",
    "  ROM → `boot.ipxe` over HTTP → kernel + initrd over HTTP; UEFI = `q35` + `OVMF_CODE_4M.fd` (own vars copy), OVMF's PXE (no iPXE ROM) →",
    "  shimx64.efi → grubx64.efi (Debian's signed network GRUB) over TFTP → `grub/grub.cfg` → per-MAC entry → kernel + initrd over TFTP;",
    "  Secure Boot = the same with `OVMF_CODE_4M.secboot.fd` + `OVMF_VARS_4M.ms.fd` (Microsoft's keys: shim, GRUB and Debian's kernel verified).",
    `  Same RAM disk for all three: stage 1 initrd ${(r.initrdBytes / 1e6).toFixed(1)} MB (zstd) through the boot loader, then the agent payload (${(r.payloadBytes / 1e6).toFixed(1)} MB zstd) over HTTP by the RAM disk itself.`,
    "  Images: the BIOS VM deploys the BIOS stand-in image (MBR), the UEFI and Secure Boot VMs the UEFI one (GPT, ESP with shim + signed GRUB +",
    "  signed kernel); each profile says its firmware. Per round a fresh Rackhand and the three clicks at once; the rows end at the OS's marker.",
    "",
    "### Summary (median, min–max in brackets)",
    "",
    "| Firmware | click → OS marker | vs BIOS | click → agent lookup | floor: netboot + disk boot by hand | vs floor | Target | Verdict |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...summary,
    "",
    "### Phases (each from the previous phase's end; floor: the same VM started directly, from QEMU's start)",
    "",
    `| Phase (ends when) | ${fws.map((fw) => `${NAMES[fw]} | floor`).join(" | ")} |`,
    `| --- | ${fws.map(() => "--- | ---").join(" | ")} |`,
    ...phaseRows,
    "",
    "Floor, netboot part: the machine set to `deploying` in the database (its per-MAC agent entry rendered; no job, no BMC), the VM's own QEMU",
    "arguments with the NIC first, started by the bench (the three at once, like the clicks); phases from QEMU's start to the same console lines",
    "and DHCPACK, up to the payload. Floor, disk part (the marker row): the disk the clicks deployed, disk first, QEMU's start → the marker.",
    "The floor has no agent work (lookup, image write, configure) and no BMC calls: those phases have no floor.",
    ...(errors.length ? ["", "### Failed runs", "", ...errors] : []),
    "",
  ].join("\n");
}
