/**
 * The phases of one machine's deploy on the virtual rack, from the deploy click to the installed OS's marker:
 * when each one ended, read from the job's steps (server-side timestamps), Rackhand's dnsmasq log lines and the
 * VM's serial console (ConsoleWatch). Shared by the full-deploy VM test (prints them) and `npm run bench:vm`.
 */
import { asc, eq } from "drizzle-orm";
import type { Db } from "../server/db/client";
import { jobs, logLines, steps } from "../server/db/schema";

/** Console patterns (ConsoleWatch) the phases read: the RAM disk's lease line and the installed OS's marker. */
export function deployConsolePatterns(marker: string): Record<"ramdiskInit" | "osUp" | "osNet", RegExp> {
  return {
    ramdiskInit: /rackhand-init: lease/,
    osUp: new RegExp(`${marker} uptime=\\S+ host=rackhand-os net=\\S+\\n`),
    osNet: /os-net: \/etc\/network\/interfaces: .*\n/,
  };
}

/** Phase ends in the order they happen; each phase runs from the previous end (the click for the first). */
export const DEPLOY_PHASES = [
  { key: "powerOn", label: "power-on (boot device pxe + power cycle done)" },
  { key: "dhcp", label: "first DHCP lease (iPXE)" },
  { key: "ramdisk", label: "RAM disk up (lease in the RAM disk)" },
  { key: "lookup", label: "agent lookup (wait_agent done)" },
  { key: "written", label: "image written (write_image done)" },
  { key: "reboot", label: "reboot (boot device disk + power cycle done)" },
  { key: "osUp", label: "OS up (marker on the console)" },
] as const;
export type PhaseKey = (typeof DEPLOY_PHASES)[number]["key"];

export interface DeployTimeline {
  /** Epoch ms of the deploy click. */
  clickAt: number;
  /** Epoch ms at which each phase ended; null when it was not seen. */
  ends: Record<PhaseKey, number | null>;
  /** Epoch ms at which the job finished (the machine became `deployed` when it succeeded). */
  jobFinishedAt: number | null;
  /** The agent's last "written X MiB, Y MB/s" line of write_image: image bytes and the pipeline's MB/s (10^6 B/s). */
  writeMBps: number | null;
}

export interface TimelineInput {
  db: Db;
  jobId: number;
  /** The machine's boot MAC (dnsmasq logs it with each DHCPACK). */
  mac: string;
  clickAt: number;
  /** Rackhand's log lines, each starting with its ISO timestamp (server/log.ts). */
  serverLog: readonly string[];
  /** ConsoleWatch.seen of the machine's console, with the deployConsolePatterns() names. */
  consoleSeen: Readonly<Record<string, number>>;
}

const epoch = (d: Date | null | undefined) => (d ? d.getTime() : null);

/** Epoch ms of the first DHCPACK to `mac` at or after `since` in Rackhand's log (dnsmasq's lines), or null. */
export function firstDhcpAck(serverLog: readonly string[], mac: string, since: number): number | null {
  for (const l of serverLog) {
    if (!l.includes("DHCPACK") || !l.includes(mac)) continue;
    const t = Date.parse(l.slice(0, 24)); // server/log.ts: each line starts with its ISO timestamp
    if (t >= since) return t;
  }
  return null;
}

/** Read the timeline of a finished (or running) deploy job. */
export function deployTimeline(o: TimelineInput): DeployTimeline {
  const all = o.db.select().from(steps).where(eq(steps.jobId, o.jobId)).orderBy(asc(steps.group), asc(steps.id)).all();
  const byName = (n: string) => all.filter((s) => s.name === n);
  const cycles = byName("power_cycle");
  // The first DHCPACK to this MAC after the click: iPXE's (the ROM's DHCP), before the RAM disk's own.
  const ack = firstDhcpAck(o.serverLog, o.mac, o.clickAt);
  const job = o.db.select().from(jobs).where(eq(jobs.id, o.jobId)).get();
  const writeStep = byName("write_image")[0];
  let writeMBps: number | null = null;
  if (writeStep) {
    const lines = o.db.select().from(logLines).where(eq(logLines.stepId, writeStep.id)).orderBy(asc(logLines.seq)).all();
    const last = lines.map((l) => /^written [\d.]+ MiB, ([\d.]+) MB\/s/.exec(l.text)).filter((m) => m !== null).at(-1);
    writeMBps = last ? Number(last[1]) : null;
  }
  return {
    clickAt: o.clickAt,
    ends: {
      powerOn: epoch(cycles[0]?.finishedAt),
      dhcp: ack,
      ramdisk: o.consoleSeen.ramdiskInit ?? null,
      lookup: epoch(byName("wait_agent")[0]?.finishedAt),
      written: epoch(writeStep?.finishedAt),
      reboot: cycles.length > 1 ? epoch(cycles.at(-1)?.finishedAt) : null,
      osUp: o.consoleSeen.osUp ?? null,
    },
    jobFinishedAt: epoch(job?.finishedAt),
    writeMBps,
  };
}

/** Each phase's end in ms since the click (NaN when not seen). */
export function sinceClick(t: DeployTimeline): Record<PhaseKey, number> {
  const out = {} as Record<PhaseKey, number>;
  for (const { key } of DEPLOY_PHASES) out[key] = t.ends[key] === null ? NaN : t.ends[key] - t.clickAt;
  return out;
}

/** Each phase's own duration in ms: from the previous phase's end (the click for the first); NaN when unseen. */
export function phaseDurations(t: DeployTimeline): Record<PhaseKey, number> {
  const at = sinceClick(t);
  const out = {} as Record<PhaseKey, number>;
  let prev = 0;
  for (const { key } of DEPLOY_PHASES) {
    out[key] = at[key] - prev;
    prev = at[key];
  }
  return out;
}

/** The phases as text lines, ms since the click (what the VM test prints). */
export function formatTimeline(t: DeployTimeline): string {
  const at = sinceClick(t);
  return DEPLOY_PHASES.map(({ key, label }) => `  ${String(at[key]).padStart(7)}  ${label}`).join("\n");
}
