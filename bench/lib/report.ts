/** Figures with targets, the machine description, the console table and docs/BENCHMARKS.md. */
import fs from "node:fs";
import os from "node:os";

export interface Target {
  op: "<=" | ">=";
  value: number;
}

export interface Figure {
  name: string;
  unit: string;
  value?: number;
  target?: Target;
  /** Set when the figure could not be measured: the run failed there. */
  error?: string;
  note?: string;
}

export type Verdict = "PASS" | "MISS" | "FAIL" | "—";

export function verdict(f: Figure): Verdict {
  if (f.error !== undefined || f.value === undefined) return "FAIL";
  if (!f.target) return "—";
  const ok = f.target.op === "<=" ? f.value <= f.target.value : f.value >= f.target.value;
  return ok ? "PASS" : "MISS";
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));
const showValue = (f: Figure) => (f.value === undefined ? "not measured" : `${fmt(f.value)} ${f.unit}`);
const showTarget = (f: Figure) => (f.target ? `${f.target.op === "<=" ? "≤" : "≥"} ${f.target.value} ${f.unit}` : "—");

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGb: number;
  node: string;
  os: string;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readOr("/proc/cpuinfo", "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readOr("/etc/os-release", ""))?.[1] ?? os.type();
  return {
    cpu: cpu.trim(),
    cores: os.availableParallelism(),
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${pretty} (Linux ${os.release()}, ${os.arch()})`,
  };
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

export function printTable(figures: Figure[]): void {
  const rows = figures.map((f) => [f.name, showValue(f), showTarget(f), verdict(f)]);
  const head = ["Figure", "Result", "Target", "Verdict"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(`\n${line(head)}\n${widths.map((w) => "-".repeat(w)).join("  ")}`);
  for (const r of rows) console.log(line(r));
  for (const f of figures.filter((x) => x.error)) console.log(`\nFAIL ${f.name}: ${f.error}`);
}

export interface ReportInput {
  date: Date;
  command: string;
  machine: MachineInfo;
  build: string;
  browser?: string;
  figures: Figure[];
  /** Free-form lines: fleet, seeding time, method notes. */
  context: string[];
  durationS: number;
  /** What else ran when the bench started: other work on the machine skews every figure. */
  idle: IdleProbe;
  /** othersPercent() over the run (after the server and Chromium were reaped). */
  othersPercent: number;
}

export interface IdleProbe {
  busyPercent: number;
  load: number[];
}

function cpuTicks(): { busy: number; total: number } {
  const fields = readOr("/proc/stat", "cpu 0 0 0 0").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Whole-machine CPU use over `ms` (from /proc/stat) and the load average. */
export async function probeIdle(ms = 2000): Promise<IdleProbe> {
  const a = cpuTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTicks();
  const busyPercent = b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : 0;
  return { busyPercent, load: os.loadavg() };
}

/** More than 15 % of the machine's CPU was in use before the bench started. */
export const busy = (p: IdleProbe) => p.busyPercent > 15;

export interface CpuSnapshot {
  machineBusy: number;
  machineTotal: number;
  /** This process and its reaped children (the server, Chromium), in the same clock ticks. */
  own: number;
}

export function cpuSnapshot(): CpuSnapshot {
  const m = cpuTicks();
  const stat = readOr("/proc/self/stat", "");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // After "pid (comm) ": state is field 0, utime..cstime are fields 11..14.
  const own = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
  return { machineBusy: m.busy, machineTotal: m.total, own };
}

/**
 * CPU time (user + system, ms) a process has used, from /proc/<pid>/stat (USER_HZ 100 on Linux); with `children`,
 * also that of its reaped children. Null once the process is gone.
 */
export function processCpuMs(pid: number, opts: { children?: boolean } = {}): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // After "pid (comm) ": state is field 0, ppid 1, utime..cstime are fields 11..14.
  const ticks = (f[11] ?? 0) + (f[12] ?? 0) + (opts.children ? (f[13] ?? 0) + (f[14] ?? 0) : 0);
  return (ticks * 1000) / 100;
}

/** PostgreSQL's CPU so far (ms): the postmaster with its reaped children, plus its live children (the backends). */
export function pgCpuMs(postmaster: number): number {
  let total = processCpuMs(postmaster, { children: true }) ?? 0;
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) total += processCpuMs(Number(e)) ?? 0;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Share of the machine's CPU capacity used by processes other than the bench, the server and Chromium. */
export function othersPercent(a: CpuSnapshot, b: CpuSnapshot): number {
  const total = b.machineTotal - a.machineTotal;
  if (total <= 0) return 0;
  return Math.max(0, ((b.machineBusy - a.machineBusy - (b.own - a.own)) / total) * 100);
}

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

export function renderMarkdown(r: ReportInput): string {
  const m = r.machine;
  const rows = r.figures.map(
    (f) => `| ${cell(f.name)} | ${cell(showValue(f))} | ${cell(showTarget(f))} | **${verdict(f)}** | ${cell(f.error ?? f.note ?? "")} |`,
  );
  return [
    "## Machine list at 10,000 machines (issue 2)",
    "",
    "Written by `bench/list.ts` on every run (this section only).",
    "",
    `- **Date:** ${r.date.toISOString().replace("T", " ").slice(0, 19)} UTC`,
    `- **Command:** \`${r.command}\``,
    `- **Machine:** ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB RAM, Node ${m.node}, ${m.os}`,
    `- **Build:** ${r.build}`,
    ...(r.browser ? [`- **Browser:** ${r.browser}`] : []),
    `- **Before start:** CPU ${r.idle.busyPercent.toFixed(0)} % busy over 2 s, load average ${r.idle.load.map((x) => x.toFixed(2)).join(" / ")}` +
      (busy(r.idle) ? " — **other work was running; figures may be pessimistic**" : ""),
    `- **Other processes during the run:** ${r.othersPercent.toFixed(0)} % of the machine's CPU` +
      (r.othersPercent > 10 ? " — **the figures were disturbed; rerun on an idle machine**" : ""),
    `- **Bench duration:** ${Math.round(r.durationS)} s (server start to stop, build excluded)`,
    "",
    "### Results",
    "",
    "| Figure | Result | Target | Verdict | Notes |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
    "PASS/MISS compare the result with its target; FAIL means the figure could not be measured (see Notes);",
    "— means there is no target (reported for information).",
    "",
    "### Setup",
    "",
    ...r.context.map((l) => `- ${l}`),
    "",
    "### Running it",
    "",
    "- `npm run bench:list` (about 40 s on an idle 2-core machine; hard limit 5 minutes, build excluded). It runs `npm run build` first only when",
    "  `dist/server.mjs` or `.next/BUILD_ID` is missing, so rebuild after changing the code.",
    "- `npm run bench:list -- --strict` also exits with status 2 when a target is missed (status 1 means a figure could not be measured).",
    "- Run it on an otherwise idle machine: the bench, the server and Chromium share the same cores, and the report notes",
    "  how much other work ran before and during the run.",
    "",
  ].join("\n");
}
