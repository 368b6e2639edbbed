/** The "vm" section of docs/BENCHMARKS.md: npm run bench:vm's figures, phases and floors as Markdown. */
import { DEPLOY_PHASES, phaseDurations, sinceClick, type DeployTimeline, type PhaseKey } from "../../lab/phases";
import type { IdleProbe, MachineInfo } from "./report";
import type { FloorRun } from "./vm-floors";
import { median } from "./stats";

export interface RunResult {
  timelines: DeployTimeline[];
  /** First click → last VM's marker / last job finished, ms. */
  allUpMs: number;
  allDeployedMs: number;
  /** This process (Rackhand + the bench's client and console polling) over the run, ms of CPU; peak RSS, MiB. */
  cpuMs: number;
  rssPeakMiB: number;
  /** 1-minute load average when the run started (other work on the host skews every figure). */
  loadAtStart: number;
}

export interface ScenarioResult {
  name: string;
  nodes: number;
  runs: RunResult[];
  errors: string[];
}

export interface VmReport {
  date: Date;
  command: string;
  machine: MachineInfo;
  qemu: string;
  kvm: boolean;
  idle: IdleProbe;
  loadEnd: number[];
  durationS: number;
  vm: { memMiB: number; diskMiB: number };
  image: { bytes: number; gzBytes: number };
  initrdBytes: number;
  floors: FloorRun[];
  scenarios: ScenarioResult[];
}

/** The hand-driven chain (../shared/lab/ramdisk/README.md §4 variant B, ipmi_sim): ms since `power on`. */
export const HAND_DRIVEN: Partial<Record<PhaseKey, number>> = { powerOn: 138, ramdisk: 12_605, lookup: 17_176, written: 20_779, reboot: 20_910, osUp: 29_090 };
/** One VM, click → marker: within 1.25× the hand-driven chain. */
export const TARGET_MS = 1.25 * HAND_DRIVEN.osUp!;

interface Stat {
  med: number;
  min: number;
  max: number;
  n: number;
}

function stat(xs: number[]): Stat | null {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return { med: median(v), min: v[0]!, max: v.at(-1)!, n: v.length };
}

const s1 = (ms: number) => (ms / 1000).toFixed(1);
/** "12.3 s (11.9–12.8)" — median (min–max) in seconds. */
const sec = (st: Stat | null) => (st ? `${s1(st.med)} s${st.n > 1 ? ` (${s1(st.min)}–${s1(st.max)})` : ""}` : "—");
const num = (st: Stat | null, digits: number, unit: string) =>
  st ? `${st.med.toFixed(digits)} ${unit}${st.n > 1 ? ` (${st.min.toFixed(digits)}–${st.max.toFixed(digits)})` : ""}` : "—";

function timelinesOf(sc: ScenarioResult | undefined): DeployTimeline[] {
  return sc?.runs.flatMap((r) => r.timelines) ?? [];
}

/**
 * Each phase's floor in ms, or null when the phase has none measured: the fastest of the floor runs (a floor is
 * the least the piece takes; a slow run measures the host's other work).
 */
function phaseFloors(r: VmReport): Record<PhaseKey, number | null> {
  const f = (pick: (x: FloorRun) => number) => stat(r.floors.map(pick))?.min ?? null;
  const mbps = stat(r.floors.map((x) => x.diskWriteMBps))?.max ?? null;
  return {
    powerOn: null,
    dhcp: f((x) => x.pxeDhcpMs),
    ramdisk: f((x) => x.ramdiskMs),
    lookup: f((x) => x.nodeStartMs),
    written: mbps ? (r.image.bytes / 1e6 / mbps) * 1000 : null,
    reboot: null,
    osUp: f((x) => x.osBootMs),
  };
}

const FLOOR_NOTES: Record<PhaseKey, string> = {
  powerOn: "— (two ipmitool round trips; hand-driven 0.14 s)",
  dhcp: "QEMU -boot n started directly → iPXE's DHCPACK",
  ramdisk: "same kernel + initramfs booted directly (-kernel/-initrd) → init's first line, after its DHCP",
  lookup: "`node -e 0` in the RAM disk (Node's start-up alone)",
  written: "image bytes ÷ dd write speed of the virtual disk (inventory, wipe and read-back not in the floor)",
  reboot: "— (configure_network, two ipmitool round trips)",
  osUp: "stand-in OS booted from its disk directly (-boot c) → marker",
};

function phaseRows(r: VmReport): string[] {
  const one = timelinesOf(r.scenarios.find((s) => s.nodes === 1));
  const three = timelinesOf(r.scenarios.find((s) => s.nodes > 1));
  const floors = phaseFloors(r);
  const col = (ts: DeployTimeline[], k: PhaseKey, f: (t: DeployTimeline) => Record<PhaseKey, number>) => sec(stat(ts.map((t) => f(t)[k])));
  const rows = DEPLOY_PHASES.map(({ key, label }) => {
    const floor = floors[key];
    const hand = HAND_DRIVEN[key];
    return `| ${label} | ${col(one, key, phaseDurations)} | ${col(one, key, sinceClick)} | ${col(three, key, phaseDurations)} | ${col(three, key, sinceClick)} | ${floor === null ? "—" : `${s1(floor)} s`} | ${hand === undefined ? "—" : `${s1(hand)} s`} |`;
  });
  const floorSum = Object.values(floors).reduce<number>((a, b) => a + (b ?? 0), 0);
  rows.push(`| **total: click → OS marker** | | ${col(one, "osUp", sinceClick)} | | ${col(three, "osUp", sinceClick)} | ${s1(floorSum)} s (sum) | ${s1(HAND_DRIVEN.osUp!)} s |`);
  return rows;
}

export function renderVmSection(r: VmReport): string {
  const m = r.machine;
  const oneSc = r.scenarios.find((s) => s.nodes === 1);
  const threeSc = r.scenarios.find((s) => s.nodes > 1);
  const one = timelinesOf(oneSc);
  const three = timelinesOf(threeSc);
  const toMarker = (ts: DeployTimeline[]) => stat(ts.map((t) => sinceClick(t).osUp));
  const toDeployed = (ts: DeployTimeline[]) => stat(ts.map((t) => (t.jobFinishedAt ?? NaN) - t.clickAt));
  const oneUp = toMarker(one);
  const floors = phaseFloors(r);
  const floorSum = Object.values(floors).reduce<number>((a, b) => a + (b ?? 0), 0);
  const verdict = oneUp ? (oneUp.med <= TARGET_MS ? "**PASS**" : "**MISS**") : "**FAIL** (not measured)";
  const runsOf = (sc?: ScenarioResult) => (sc ? `${sc.runs.length} of ${sc.runs.length + sc.errors.length} runs` : "not run");
  const fl = (pick: (x: FloorRun) => number) => stat(r.floors.map(pick));
  const summary = [
    `| one VM: click → \`deployed\` (job finished) | ${sec(toDeployed(one))} | — | |`,
    `| **one VM: click → installed OS's marker** | ${sec(oneUp)} | ≤ ${s1(TARGET_MS)} s (1.25 × ${s1(HAND_DRIVEN.osUp!)} s hand-driven) | ${verdict} |`,
    `| one VM: above the sum of the phase floors (${s1(floorSum)} s) | ${oneUp ? `${s1(oneUp.med - floorSum)} s` : "—"} | — | |`,
    `| 3 VMs in parallel: click → all 3 \`deployed\` | ${sec(stat(threeSc?.runs.map((x) => x.allDeployedMs) ?? []))} | — | |`,
    `| 3 VMs in parallel: click → all 3 at the marker | ${sec(stat(threeSc?.runs.map((x) => x.allUpMs) ?? []))} | — | |`,
    `| 3 VMs in parallel: each VM, click → marker | ${sec(toMarker(three))} | — | |`,
    `| write_image pipeline in the VM (HTTP → gunzip → sha256 → disk, agent's log), one VM / 3 VMs | ${num(stat(one.map((t) => t.writeMBps ?? NaN)), 1, "MB/s")} / ${num(stat(three.map((t) => t.writeMBps ?? NaN)), 1, "MB/s")} | — | |`,
    `| bench process CPU (in-process Rackhand + client + console polling) per run, one VM / 3 VMs | ${num(stat(oneSc?.runs.map((x) => x.cpuMs / 1000) ?? []), 2, "s")} / ${num(stat(threeSc?.runs.map((x) => x.cpuMs / 1000) ?? []), 2, "s")} | — | |`,
    `| bench process peak RSS per run, one VM / 3 VMs | ${num(stat(oneSc?.runs.map((x) => x.rssPeakMiB) ?? []), 0, "MiB")} / ${num(stat(threeSc?.runs.map((x) => x.rssPeakMiB) ?? []), 0, "MiB")} | — | |`,
  ];
  const floorRows = [
    `| PXE: QEMU -boot n → iPXE's DHCPACK in Rackhand's dnsmasq log | ${sec(fl((x) => x.pxeDhcpMs))} |`,
    `| RAM disk: QEMU -kernel vmlinuz -initrd initrd.img (-append "console=tty0 console=ttyS0,115200 rackhand.shell=1") → first \`rackhand-init:\` line (printed after its DHCP lease) | ${sec(fl((x) => x.ramdiskMs))} |`,
    `| Node start-up in the RAM disk: \`node -e 0\` (guest /proc/uptime) | ${num(fl((x) => x.nodeStartMs / 1000), 2, "s")} |`,
    `| virtual disk write speed: \`dd if=/dev/zero of=/dev/vda bs=1M count=${Math.ceil(r.image.bytes / 2 ** 20)} conv=fsync\` in the RAM disk | ${num(fl((x) => x.diskWriteMBps), 1, "MB/s")} → ${floors.written === null ? "—" : `${s1(floors.written)} s`} for the image |`,
    `| installed OS: the raw stand-in image booted from disk (-boot c, snapshot=on) → marker | ${sec(fl((x) => x.osBootMs))} |`,
  ];
  const loads = r.scenarios.flatMap((s) => s.runs.map((x) => x.loadAtStart));
  const errors = r.scenarios.flatMap((s) => s.errors.map((e) => `- ${s.name}: ${e.split("\n")[0]}`));
  return [
    "## Full deploy on QEMU VMs (npm run bench:vm)",
    "",
    "Written by `bench/vm.ts` on every run (this section only).",
    "",
    `- **Date:** ${r.date.toISOString().replace("T", " ").slice(0, 19)} UTC; bench duration ${Math.round(r.durationS)} s`,
    `- **Command:** \`${r.command}\` (as root; runs: ${runsOf(oneSc)} with one VM, ${runsOf(threeSc)} with 3 VMs, ${r.floors.length} floor runs)`,
    `- **Machine:** ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB RAM, Node ${m.node}, ${m.os}`,
    `- **QEMU:** ${r.qemu}, ${r.kvm ? "KVM present but not used:" : "no KVM:"} TCG (\`-machine pc,accel=tcg\`), 1 vCPU, ${r.vm.memMiB} MiB, virtio NIC + virtio disk (${r.vm.diskMiB} MiB raw file)`,
    `- **Load:** before the start ${r.idle.busyPercent.toFixed(0)} % CPU busy over 2 s, load average ${r.idle.load.map((x) => x.toFixed(2)).join(" / ")}; 1-min load at each run's start ${loads.length ? `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}` : "—"}; at the end ${r.loadEnd.map((x) => x.toFixed(2)).join(" / ")}` +
      (r.idle.busyPercent > 15 ? " — **other work was running on the host: the figures are pessimistic**" : ""),
    `- **What boots:** the agent RAM disk (gzip initrd ${(r.initrdBytes / 1e6).toFixed(1)} MB, over HTTP through iPXE) and the stand-in OS image (${(r.image.bytes / 2 ** 20).toFixed(0)} MiB raw, ${(r.image.gzBytes / 1e6).toFixed(1)} MB gzip: FAT boot partition with syslinux + ext4 root)`,
    "- **Each run:** the same virtual rack of 3 VMs (bridge, netns, ipmi_sim BMCs: prefix `rbv`, 10.199.0.0/24) and a fresh in-process Rackhand",
    "  (new data directory, managed dnsmasq in the netns; the VMs enrolled, managed and provided through tRPC); VM disks blanked while off;",
    "  the click is `machines.action {action: \"deploy\"}` through tRPC as the UI sends it (in the parallel runs: 3 clicks at once).",
    "",
    "### Summary (median, min–max in brackets)",
    "",
    "| Figure | Result | Target | Verdict |",
    "| --- | --- | --- | --- |",
    ...summary,
    "",
    "### Phases",
    "",
    "Each phase runs from the previous phase's end (the first from the click). Ends: step `finished_at` in the database (power-on =",
    "first power_cycle, agent lookup = wait_agent, image written = write_image, reboot = last power_cycle), the first DHCPACK to the",
    "VM's MAC in Rackhand's dnsmasq log, and the first console appearance (100 ms polling) of `rackhand-init: lease` and of the OS's marker.",
    "",
    "| Phase (ends when) | one VM: phase | one VM: ends at | 3 VMs: phase | 3 VMs: ends at | floor of the phase | hand-driven: ends at |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...phaseRows(r),
    "",
    "Floors: " + DEPLOY_PHASES.map(({ key, label }) => `${label.split(" (")[0]}: ${FLOOR_NOTES[key]}`).join("; ") + ".",
    "The floors are measured one at a time with QEMU started directly (same TCG machine and memory), the fastest run counts; each includes QEMU's and",
    "the firmware's start, so their sum slightly overstates the floor of the chain. Hand-driven: ../shared/lab/ramdisk/README.md §4 variant B",
    "(ipmi_sim-driven, ms since `power on`; zstd RAM disk, a 32 MiB FAT-only image, no inventory/wipe/configure_network, no read-back of the whole disk).",
    "",
    "### Floors measured",
    "",
    "| Floor | Result (median, min–max) |",
    "| --- | --- |",
    ...floorRows,
    ...(errors.length ? ["", "### Failed runs", "", ...errors] : []),
    "",
  ].join("\n");
}
