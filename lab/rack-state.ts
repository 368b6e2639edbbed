/**
 * The lab's record of what it created, and its removal: <dir>/rack.json, the host-wide registry of labs by prefix
 * (/run/rackhand-lab/<prefix>.json, with the PID of the process that brought the lab up), and the teardown of a
 * lab's processes, links and namespace. Processes are identified by their command line, never by a PID alone.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { alive } from "../server/oob/testing/ipmi-sim";

export const VM_FIRMWARES = ["bios", "uefi", "secureboot"] as const;
export type NodeFirmware = (typeof VM_FIRMWARES)[number];
export type VmFirmware = NodeFirmware;

export interface VirtualNode {
  index: number;
  name: string;
  mac: string;
  /** The MACs of NICs 2, 3, … (rack option `nics`; absent with one NIC). */
  extraMacs?: string[];
  /** The address Rackhand reserves for it on the provisioning network. */
  ip: string;
  bmc: { address: string; port: number; username: string; password: string };
  /** TCP port of the VM's serial line where the BMC's SOL connects (lab/serial-relay.mjs). */
  serialPort: number;
  /** TCP port of the same line where the VM's serial port connects (a client, reconnecting after power cycles). */
  vmSerialPort: number;
  dir: string;
  /** The first disk (vda) and all of them (vda, vdb, …), as raw files on the host. */
  disk: string;
  disks: string[];
  /** Everything the VM printed on its serial console, across power cycles. */
  consoleLog: string;
  bmcPid: number;
  relayPid: number;
  firmware: NodeFirmware;
}

export interface RackState {
  createdAt: string;
  prefix: string;
  net: string;
  netns: string;
  bridge: string;
  /** Host-side links created (deleted on down). */
  links: string[];
  /** Interface name of dnsmasq's side, inside the netns. */
  dhcpInterface: string;
  /** dnsmasq's address in the netns. */
  dhcpAddress: string;
  /** Host address on the bridge: Rackhand's HTTP server as the VMs see it. */
  hostAddress: string;
  nodes: VirtualNode[];
}

export function ip(args: string[], okIfFails = false): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0 && !okIfFails) throw new Error(`ip ${args.join(" ")}: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout ?? "";
}

export function readRack(dir: string): RackState | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "rack.json"), "utf8")) as RackState;
  } catch {
    return null;
  }
}

/**
 * Host-wide record of the labs brought up on this host, by prefix: the rack directory, the PID of the process that
 * brought it up and a copy of its state. The rack directory can be gone (the browser tests' data directory is removed
 * before each run) while its namespace, links and detached BMCs outlive a killed owner; with this record the next
 * `up` of the same prefix removes that stale lab, and only when its owner is dead.
 */
const REGISTRY = process.env.RACKHAND_LAB_REGISTRY ?? "/run/rackhand-lab";
interface RegistryEntry {
  dir: string;
  owner: number;
  state: RackState;
}
const registryFile = (prefix: string) => path.join(REGISTRY, `${prefix}.json`);

function readRegistry(prefix: string): RegistryEntry | null {
  try {
    return JSON.parse(fs.readFileSync(registryFile(prefix), "utf8")) as RegistryEntry;
  } catch {
    return null;
  }
}

export function writeRack(dir: string, st: RackState): void {
  const tmp = path.join(dir, ".rack.json.tmp");
  fs.writeFileSync(tmp, JSON.stringify(st, null, 2) + "\n");
  fs.renameSync(tmp, path.join(dir, "rack.json"));
  fs.mkdirSync(REGISTRY, { recursive: true, mode: 0o700 });
  const entry: RegistryEntry = { dir: path.resolve(dir), owner: process.pid, state: st };
  const rtmp = `${registryFile(st.prefix)}.${process.pid}.tmp`;
  fs.writeFileSync(rtmp, JSON.stringify(entry) + "\n", { mode: 0o600 });
  fs.renameSync(rtmp, registryFile(st.prefix));
}

export const netnsExists = (netns: string) => ip(["netns", "list"]).split("\n").some((l) => l.split(" ")[0] === netns);

/**
 * Before bringing up `prefix`: when its namespace exists, remove it if the registry shows a lab of ours whose owner
 * is dead; refuse when the owner lives or when nothing records it (a namespace someone else made).
 */
export async function reclaimStale(prefix: string, netns: string): Promise<void> {
  if (!netnsExists(netns)) return;
  const entry = readRegistry(prefix);
  if (!entry || entry.state.netns !== netns) throw new Error(`network namespace ${netns} already exists and is not ours: pick another prefix`);
  if (entry.owner !== process.pid && alive(entry.owner)) throw new Error(`lab ${prefix} is in use by PID ${entry.owner} (rack ${entry.dir}): pick another prefix, or stop that process`);
  console.error(`[lab] removing the stale lab ${prefix} left by PID ${entry.owner} (rack ${entry.dir})`);
  await teardown(entry.state);
  fs.rmSync(registryFile(prefix), { force: true });
}

export async function stopPid(pid: number): Promise<void> {
  if (!pid || !alive(pid)) return;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

/**
 * The PIDs of the QEMUs of a node: the one in its pidfile, and any qemu-system whose command line names the node's
 * directory (the pidfile is gone when the directory was removed under a running lab). Never another process.
 */
function qemuPids(dir: string): number[] {
  const pids = new Set<number>();
  const fromFile = qemuPid(dir);
  if (fromFile) pids.add(fromFile);
  for (const e of fs.readdirSync("/proc")) if (/^\d+$/.test(e) && isNodeQemu(Number(e), dir)) pids.add(Number(e));
  return [...pids];
}

const isNodeQemu = (pid: number, dir: string) => {
  const cmd = cmdlineOf(pid);
  return cmd.includes("qemu-system") && cmd.includes(`${dir}/`);
};

/** The PID in a QEMU pidfile, if that process is a QEMU we started (the pidfile may be stale). */
export function qemuPid(dir: string): number {
  try {
    const pid = Number(fs.readFileSync(path.join(dir, "qemu.pid"), "utf8").trim());
    return isNodeQemu(pid, dir) ? pid : 0;
  } catch {
    return 0;
  }
}

/** A recorded PID, if it is still the process we started (its command line holds every one of `marks`). */
const ownPid = (pid: number | undefined, ...marks: string[]) => (pid && marks.every((m) => cmdlineOf(pid).includes(m)) ? pid : 0);

export async function teardown(st: RackState): Promise<void> {
  for (const n of st.nodes) {
    await stopPid(ownPid(n.bmcPid, n.dir));
    for (const pid of qemuPids(n.dir)) await stopPid(pid);
    await stopPid(ownPid(n.relayPid, "serial-relay.mjs", `\0${n.serialPort}\0${n.vmSerialPort}`));
  }
  for (const l of [...st.links].reverse()) ip(["link", "del", l], true);
  if (netnsExists(st.netns)) ip(["netns", "del", st.netns], true);
}

/** Forget the registry entry of `prefix` when it records the lab in `dir`. */
export function forgetRegistry(prefix: string, dir: string): void {
  if (readRegistry(prefix)?.dir === path.resolve(dir)) fs.rmSync(registryFile(prefix), { force: true });
}
