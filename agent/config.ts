import fs from "node:fs";
import path from "node:path";

/** How the agent runs: from the command line (tests, manual runs) or the RAM disk's kernel command line. */
export interface AgentConfig {
  /** Base URL of the Rackhand server, e.g. http://10.0.0.1:3000 */
  api: string;
  macs: string[];
  /** The per-boot lookup secret from rackhand.nonce= (or --nonce); null: the lookup will be refused (401). */
  nonce: string | null;
  /** Handle one job, then exit (tests); otherwise go back to lookup for the next job. */
  once: boolean;
  /** Default target disk when a step names none (tests point this at a file). */
  targetDisk: string | null;
  /** Do not execute `reboot -f` (tests, manual runs on a workstation). */
  noReboot: boolean;
  /** Ceiling of the backoff between retries of API calls (ms). */
  retryMaxMs: number;
  /** Long-poll duration of a heartbeat (s). */
  waitS: number;
  /** At most one progress log line per this many ms during long steps. */
  progressMs: number;
  /** Exists only when the machine booted with UEFI firmware (tests point it elsewhere). */
  efiDir: string;
}

const USAGE = `usage: agent [--api URL] [--mac MAC ...] [--nonce HEX] [--once] [--target-disk PATH] [--no-reboot] [--retry-max-ms MS] [--wait-s S] [--progress-ms MS] [--efi-dir PATH]
  --api and --nonce default to rackhand.api= and rackhand.nonce= on /proc/cmdline; MACs default to /sys/class/net (all but lo)`;

/** The MACs of this machine's network interfaces (all but loopback). */
export function localMacs(sysClassNet = "/sys/class/net"): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(sysClassNet)) {
    if (name === "lo") continue;
    try {
      const mac = fs.readFileSync(path.join(sysClassNet, name, "address"), "utf8").trim();
      if (mac && mac !== "00:00:00:00:00:00") out.push(mac);
    } catch {
      // Interfaces without an address file (some virtual ones) cannot identify the machine.
    }
  }
  return out;
}

/** The value of rackhand.<name>= on the kernel command line, or null. */
export function fromCmdline(name: string, cmdline = "/proc/cmdline"): string | null {
  try {
    return fs.readFileSync(cmdline, "utf8").match(new RegExp(`(?:^|\\s)rackhand\\.${name}=(\\S+)`))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Parse argv (without node and script). @throws Error with the usage on bad arguments */
export function parseArgs(argv: string[]): AgentConfig {
  const c: AgentConfig = { api: "", macs: [], nonce: null, once: false, targetDisk: null, noReboot: false, retryMaxMs: 10_000, waitS: 20, progressMs: 1000, efiDir: "/sys/firmware/efi" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--api") c.api = value();
    else if (a === "--mac") c.macs.push(value());
    else if (a === "--nonce") c.nonce = value();
    else if (a === "--once") c.once = true;
    else if (a === "--target-disk") c.targetDisk = value();
    else if (a === "--no-reboot") c.noReboot = true;
    else if (a === "--retry-max-ms") c.retryMaxMs = Number(value());
    else if (a === "--wait-s") c.waitS = Number(value());
    else if (a === "--progress-ms") c.progressMs = Number(value());
    else if (a === "--efi-dir") c.efiDir = value();
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  c.nonce ??= fromCmdline("nonce");
  if (c.nonce !== null && !/^[0-9a-f]{64}$/.test(c.nonce)) throw new Error(`the nonce must be 64 hex digits (rackhand.nonce= or --nonce)\n${USAGE}`);
  c.api = (c.api || fromCmdline("api") || "").replace(/\/+$/, "");
  if (!/^https?:\/\/[^\s]+$/.test(c.api)) throw new Error(`no API URL (--api or rackhand.api= on the kernel command line)\n${USAGE}`);
  if (!c.macs.length) c.macs = localMacs();
  if (!c.macs.length) throw new Error("no network interface with a MAC address found");
  if (!(c.retryMaxMs >= 50)) throw new Error("--retry-max-ms must be a number >= 50");
  if (!(c.progressMs >= 10)) throw new Error("--progress-ms must be a number >= 10");
  if (!(c.waitS >= 0 && c.waitS <= 30)) throw new Error("--wait-s must be between 0 and 30");
  return c;
}
