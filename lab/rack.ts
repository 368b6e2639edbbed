/**
 * A virtual rack: QEMU VMs standing in for servers, each behind its own OpenIPMI `ipmi_sim` BMC on 127.0.0.1,
 * on a provisioning network of their own. Used by `npm run lab`, the full-deploy VM test and `npm run bench:vm`.
 *
 *   host netns:  bridge <p>br (no IPv6) ── tap <p>t<i> ── VM i (virtio NIC, virtio disk, serial → TCP + log file)
 *                        ├── tap <p>t<i>n<k> ── VM i's NIC k (with `nics` ≥ 2: same bridge, no boot ROM)
 *                        │   address <net>.2/24: the VMs reach Rackhand's HTTP server here
 *                        └── veth <p>vh ═══ <p>v in netns <p>ns: <net>.1/24 + fd<xx>::1/64 — Rackhand's managed
 *                                                 dnsmasq runs there (`ip netns exec <p>ns dnsmasq`)
 *   BMC i:       ipmi_sim lanplus on 127.0.0.1:<bmcPort> (the test fixture's lan.conf and chassis-control.sh,
 *                server/oob/testing): with qemu.args in its directory, power/boot device start and stop VM i
 *                (-boot n for pxe, -boot c otherwise; UEFI VMs: bootindex NIC 1 / disk 2 for pxe, the reverse
 *                otherwise, as OVMF ignores -boot); SOL reads the VM's serial line (lab/serial-relay.mjs).
 *   firmware:    bios (QEMU pc, SeaBIOS), uefi (q35 + OVMF) or secureboot (q35 + OVMF's Secure Boot code with
 *                Microsoft's keys enrolled); each UEFI VM has its own writable copy of the variable store.
 *
 * Everything it creates is recorded in <dir>/rack.json and in /run/rackhand-lab/<prefix>.json (with the PID of the
 * process that brought it up); `down` removes exactly that (its own PIDs, netns, links), and the next `up` of a prefix
 * whose owner died removes what it left, even when <dir> is gone.
 * Needs root (network namespaces, taps) and the tools of scripts/install-system-deps.sh test.
 */
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BMC_EMU, freeTcpPort, freeUdpPort, simIpmitool, simLanConf, SIM_USER } from "../server/oob/testing/ipmi-sim";
import { forgetRegistry, ip, qemuPid, readRack, reclaimStale, teardown, writeRack, type NodeFirmware, type RackState, type VirtualNode } from "./rack-state";

export { readRack, VM_FIRMWARES, type NodeFirmware, type RackState, type VirtualNode, type VmFirmware } from "./rack-state";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RELAY = path.join(HERE, "serial-relay.mjs");
const TOOLS: [string, string][] = [
  ["ip", "iproute2"],
  ["ipmi_sim", "openipmi"],
  ["ipmitool", "ipmitool"],
  ["qemu-system-x86_64", "qemu-system-x86"],
  ["dnsmasq", "dnsmasq"],
  ["mkfs.ext4", "e2fsprogs"],
];

export interface RackOptions {
  /** State directory: rack.json, per-node disks, consoles, BMC state, logs. */
  dir: string;
  /** Name prefix of network namespace and links, 2–6 lowercase letters/digits (interface names stay ≤ 15). */
  prefix: string;
  /** First three octets of the provisioning /24, e.g. "10.77.0". */
  net: string;
  nodes: number;
  /** VM memory (the RAM disk needs ≥ 288 MiB). */
  memMiB?: number;
  diskMiB?: number;
  /** Virtual disks per VM (vda, vdb, …; default 1): two or more for software RAID deploys. */
  disks?: number;
  /** First BMC UDP port (node i uses base+i) and first serial TCP port (base+100+i); 0 = any free ports. */
  portBase?: number;
  /** Node names: <namePrefix><i>. */
  namePrefix?: string;
  /** The VMs' firmware (default bios): one for all, or one per node in order. */
  firmware?: NodeFirmware | readonly NodeFirmware[];
  /**
   * UEFI VMs (not secureboot) network-boot through UEFI HTTP Boot instead of PXE: OVMF's PXE boot entries are
   * turned off, so its HTTPv4 entry is the NIC's first.
   */
  httpBoot?: boolean;
  /** NICs per VM (default 1, at most 4): the others are on the same bridge, after the boot NIC in PCI order. */
  nics?: number;
}

const OVMF = "/usr/share/OVMF";

/** Throw (never skip) when the host cannot run the lab (UEFI VMs also need OVMF's files). */
export function requireLabTools(firmwares: readonly NodeFirmware[] = []): void {
  if (process.getuid?.() !== 0) throw new Error("the virtual lab needs root (network namespaces, tap devices)");
  if (!fs.existsSync("/dev/net/tun")) throw new Error("/dev/net/tun is missing: the VMs' tap devices need the tun driver (a container needs --device /dev/net/tun)");
  for (const [tool, pkg] of TOOLS) {
    if (spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool]).status !== 0) {
      throw new Error(`${tool} is not installed (Debian package ${pkg}): run scripts/install-system-deps.sh test`);
    }
  }
  for (const fw of new Set(firmwares)) {
    if (fw === "bios") continue;
    const files = fw === "secureboot" ? ["OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"] : ["OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"];
    for (const f of files) if (!fs.existsSync(path.join(OVMF, f))) throw new Error(`${OVMF}/${f} is missing: ${fw} VMs need OVMF (Debian package ovmf; scripts/install-system-deps.sh test)`);
  }
}

function sysctl(key: string, value: string): void {
  // Writes the /proc/sys file directly (no procps needed); IPv6 may be absent: ignored then.
  try {
    fs.writeFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, value);
  } catch {
    /* no such sysctl on this host */
  }
}

function macOf(net: string, i: number): string {
  const third = Number(net.split(".")[2] ?? 0);
  return `52:54:00:${(Number(net.split(".")[1]) & 0xff).toString(16).padStart(2, "0")}:${third.toString(16).padStart(2, "0")}:${i.toString(16).padStart(2, "0")}`;
}

/**
 * The firmware part of a VM's QEMU arguments. UEFI: OVMF on q35 (the lab's measured recipe: smm=on and secure
 * pflash for the Secure Boot code, the 4M code with the 4M vars), no iPXE option ROM on the NIC (OVMF's own PXE
 * is what is tested), no IPv6 PXE entry. The boot order is bootindex, which chassis-control.sh fills in from the
 * BMC's boot device (@BOOTINDEX_NET@, @BOOTINDEX_DISK@).
 */
function firmwareArgs(n: VirtualNode, httpBoot: boolean): { machine: string[]; nic: string; disk0: (file: string) => string[] } {
  if (n.firmware === "bios") return { machine: ["-machine", "pc,accel=tcg"], nic: "", disk0: (d) => ["-drive", `file=${d},if=virtio,format=raw,discard=unmap`] };
  const sb = n.firmware === "secureboot";
  const vars = path.join(n.dir, "ovmf-vars.fd");
  return {
    machine: [
      ...["-machine", sb ? "q35,smm=on,accel=tcg" : "q35,accel=tcg"],
      ...(sb ? ["-global", "driver=cfi.pflash01,property=secure,value=on", "-global", "ICH9-LPC.disable_s3=1"] : []),
      ...["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF}/${sb ? "OVMF_CODE_4M.secboot.fd" : "OVMF_CODE_4M.fd"}`],
      ...["-drive", `if=pflash,format=raw,unit=1,file=${vars}`],
      ...["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"],
      ...(httpBoot && !sb ? ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"] : []),
    ],
    nic: ",romfile=,bootindex=@BOOTINDEX_NET@",
    disk0: (d) => ["-drive", `file=${d},if=none,id=disk0,format=raw,discard=unmap`, "-device", "virtio-blk-pci,drive=disk0,bootindex=@BOOTINDEX_DISK@"],
  };
}

/** The variable store a UEFI VM starts with: a fresh copy (Microsoft's keys enrolled for Secure Boot). */
function initFirmware(n: VirtualNode): void {
  if (n.firmware === "bios") return;
  const vars = n.firmware === "secureboot" ? "OVMF_VARS_4M.ms.fd" : "OVMF_VARS_4M.fd";
  const code = n.firmware === "secureboot" ? "OVMF_CODE_4M.secboot.fd" : "OVMF_CODE_4M.fd";
  for (const f of [vars, code]) if (!fs.existsSync(path.join(OVMF, f))) throw new Error(`${OVMF}/${f} is missing (Debian package ovmf): run scripts/install-system-deps.sh test`);
  fs.copyFileSync(path.join(OVMF, vars), path.join(n.dir, "ovmf-vars.fd"));
}

function qemuArgs(n: VirtualNode, tap: string, memMiB: number, httpBoot = false, extraTaps: string[] = []): string[] {
  const fw = firmwareArgs(n, httpBoot);
  return [
    ...["-name", n.name, ...fw.machine, "-m", String(memMiB), "-display", "none", "-monitor", "none"],
    ...["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n0,mac=${n.mac}${fw.nic}`],
    // Further NICs: no option ROM, so the firmware network-boots from the first one only.
    ...extraTaps.flatMap((t, k) => ["-netdev", `tap,id=n${k + 1},ifname=${t},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n${k + 1},mac=${n.extraMacs![k]},romfile=`]),
    ...n.disks.flatMap((d, i) => (i === 0 ? fw.disk0(d) : ["-drive", `file=${d},if=virtio,format=raw,discard=unmap`])),
    // The serial port: a client of the node's serial relay (the BMC's SOL is on its other side), and a log file
    // of everything printed. reconnect: the relay may restart; QEMU keeps trying.
    ...["-chardev", `socket,id=ser0,host=127.0.0.1,port=${n.vmSerialPort},server=off,reconnect=1,logfile=${n.consoleLog},logappend=on`],
    ...["-serial", "chardev:ser0"],
  ];
}

/** The serial line's relay, detached like the BMC; resolves once both of its ports listen. */
async function startRelay(n: VirtualNode): Promise<number> {
  const log = fs.openSync(path.join(n.dir, "relay.log"), "a");
  const relay = spawn(process.execPath, [RELAY, String(n.serialPort), String(n.vmSerialPort)], { stdio: ["ignore", "pipe", log], detached: true });
  fs.closeSync(log);
  await new Promise<void>((resolve, reject) => {
    relay.stdout!.once("data", () => resolve());
    relay.once("exit", (c) => reject(new Error(`serial relay of ${n.name} exited (${c}): ${fs.readFileSync(path.join(n.dir, "relay.log"), "utf8").slice(-300)}`)));
  });
  relay.stdout!.destroy();
  relay.unref();
  return relay.pid!;
}

async function startBmc(n: VirtualNode): Promise<number> {
  const state = path.join(n.dir, "bmc-state");
  fs.rmSync(state, { recursive: true, force: true });
  fs.mkdirSync(state);
  const lan = simLanConf({ name: n.name, port: n.bmc.port, user: n.bmc.username, password: n.bmc.password, chassisDir: n.dir, solPort: n.serialPort, solHistory: 65000 });
  fs.writeFileSync(path.join(n.dir, "lan.conf"), lan, { mode: 0o600 });
  fs.writeFileSync(path.join(n.dir, "bmc.emu"), BMC_EMU);
  const log = fs.openSync(path.join(n.dir, "bmc.log"), "a");
  // Detached: the BMCs outlive the process that brought the rack up (npm run lab); `down` stops them by PID.
  const sim = spawn("ipmi_sim", ["-n", "-c", path.join(n.dir, "lan.conf"), "-f", path.join(n.dir, "bmc.emu"), "-s", state], {
    stdio: ["ignore", log, log],
    detached: true,
  });
  fs.closeSync(log);
  sim.unref();
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (sim.exitCode !== null) throw new Error(`ipmi_sim of ${n.name} exited: ${fs.readFileSync(path.join(n.dir, "bmc.log"), "utf8").slice(-400)}`);
    if (nodeIpmitool(n, ["mc", "info"]).status === 0) return sim.pid!;
    if (Date.now() > deadline) throw new Error(`ipmi_sim of ${n.name} did not answer on UDP ${n.bmc.port}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Bring the rack up (after tearing down what a previous `up` in the same dir left). VMs start powered off. */
export async function rackUp(o: RackOptions): Promise<RackState> {
  if (!/^[a-z][a-z0-9]{1,5}$/.test(o.prefix)) throw new Error("prefix: 2–6 lowercase letters/digits, starting with a letter");
  if (!/^(10|172|192)\.\d{1,3}\.\d{1,3}$/.test(o.net)) throw new Error("net: three octets of a private /24, e.g. 10.77.0");
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 20) throw new Error("nodes: 1–20");
  const nics = o.nics ?? 1;
  if (!Number.isInteger(nics) || nics < 1 || nics > 4) throw new Error("nics: 1–4");
  requireLabTools();
  fs.mkdirSync(o.dir, { recursive: true });
  await rackDown(o.dir);
  const netns = `${o.prefix}ns`;
  const bridge = `${o.prefix}br`;
  const veth = `${o.prefix}vh`;
  const peer = `${o.prefix}v`;
  // Refuse to shadow a network the host already routes (another lab, a real LAN).
  const route = ip(["-4", "route", "show", "to", "match", `${o.net}.1`]).trim();
  if (route && !route.startsWith("default")) throw new Error(`${o.net}.0/24 is already routed on this host (${route.split("\n")[0]}): pick another --net`);
  await reclaimStale(o.prefix, netns);

  const st: RackState = {
    createdAt: new Date().toISOString(),
    prefix: o.prefix,
    net: o.net,
    netns,
    bridge,
    links: [],
    dhcpInterface: peer,
    dhcpAddress: `${o.net}.1`,
    hostAddress: `${o.net}.2`,
    nodes: [],
  };
  const save = () => writeRack(o.dir, st);
  save();
  try {
    ip(["link", "add", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"]);
    st.links.push(bridge);
    save();
    sysctl(`net.ipv6.conf.${bridge}.disable_ipv6`, "1");
    ip(["addr", "add", `${st.hostAddress}/24`, "dev", bridge]);
    ip(["link", "set", bridge, "up"]);
    ip(["netns", "add", netns]);
    ip(["-n", netns, "link", "set", "lo", "up"]);
    ip(["link", "add", veth, "type", "veth", "peer", "name", peer, "netns", netns]);
    st.links.push(veth);
    save();
    sysctl(`net.ipv6.conf.${veth}.disable_ipv6`, "1");
    ip(["link", "set", veth, "master", bridge, "up"]);
    ip(["-n", netns, "addr", "add", `${st.dhcpAddress}/24`, "dev", peer]);
    // An IPv6 address so dnsmasq can answer iPXE's router solicitations (iPXE waits ~13 s for SLAAC otherwise).
    const v6 = `fd${Number(o.net.split(".")[1]).toString(16).padStart(2, "0")}:${Number(o.net.split(".")[2]).toString(16)}::1/64`;
    ip(["-n", netns, "addr", "add", v6, "dev", peer, "nodad"]);
    ip(["-n", netns, "link", "set", peer, "up"]);

    for (let i = 1; i <= o.nodes; i++) {
      const name = `${o.namePrefix ?? "vm"}${i}`;
      const dir = path.join(o.dir, name);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      const tap = `${o.prefix}t${i}`;
      ip(["tuntap", "add", "dev", tap, "mode", "tap"]);
      st.links.push(tap);
      save();
      sysctl(`net.ipv6.conf.${tap}.disable_ipv6`, "1");
      ip(["link", "set", tap, "master", bridge, "up"]);
      const extraTaps: string[] = [];
      for (let k = 2; k <= nics; k++) {
        const t = `${tap}n${k}`;
        ip(["tuntap", "add", "dev", t, "mode", "tap"]);
        st.links.push(t);
        save();
        sysctl(`net.ipv6.conf.${t}.disable_ipv6`, "1");
        ip(["link", "set", t, "master", bridge, "up"]);
        extraTaps.push(t);
      }
      const node: VirtualNode = {
        index: i,
        name,
        mac: macOf(o.net, i),
        // NIC k: the boot NIC's MAC with 52:54:0<k-1> in front (locally administered, unique per rack and node).
        ...(nics > 1 && { extraMacs: extraTaps.map((_, k) => `52:54:0${k + 1}${macOf(o.net, i).slice(8)}`) }),
        ip: `${o.net}.${10 + i}`,
        bmc: {
          address: "127.0.0.1",
          port: o.portBase ? o.portBase + i : await freeUdpPort(),
          username: SIM_USER,
          password: crypto.randomBytes(9).toString("base64url"),
        },
        serialPort: o.portBase ? o.portBase + 100 + i : await freeTcpPort(),
        vmSerialPort: o.portBase ? o.portBase + 200 + i : await freeTcpPort(),
        dir,
        disk: path.join(dir, "disk.img"),
        disks: Array.from({ length: Math.max(1, o.disks ?? 1) }, (_, k) => path.join(dir, k === 0 ? "disk.img" : `disk${k + 1}.img`)),
        consoleLog: path.join(dir, "console.log"),
        bmcPid: 0,
        relayPid: 0,
        firmware: (typeof o.firmware === "string" ? o.firmware : o.firmware?.[i - 1]) ?? "bios",
      };
      initFirmware(node);
      for (const d of node.disks) {
        fs.writeFileSync(d, "");
        fs.truncateSync(d, (o.diskMiB ?? 128) * 1024 * 1024); // not << 20: 32-bit, 4096 MiB would wrap to 0
      }
      fs.writeFileSync(node.consoleLog, "");
      fs.writeFileSync(path.join(dir, "boot"), "default\n");
      fs.writeFileSync(path.join(dir, "qemu.args"), qemuArgs(node, tap, o.memMiB ?? 512, o.httpBoot, extraTaps).join("\n") + "\n");
      st.nodes.push(node);
      save();
      node.relayPid = await startRelay(node); // before the BMC: its SOL connects to the relay at start-up
      save();
      node.bmcPid = await startBmc(node);
      save();
    }
    return st;
  } catch (err) {
    await rackDown(o.dir);
    throw err;
  }
}

/** Remove what `rackUp` in `dir` created: its VMs, its BMCs, its links and netns. Idempotent. */
export async function rackDown(dir: string): Promise<void> {
  const st = readRack(dir);
  if (!st) return;
  await teardown(st);
  fs.rmSync(path.join(dir, "rack.json"), { force: true });
  forgetRegistry(st.prefix, dir);
}

/** Run ipmitool against a node's BMC (behind Rackhand's back; the password via the environment, as Rackhand does). */
export function nodeIpmitool(n: VirtualNode, args: string[]) {
  return simIpmitool(n.bmc.port, n.bmc.password, args, n.bmc.username);
}

/** Is node i's VM running right now? */
export function vmRunning(n: VirtualNode): boolean {
  return qemuPid(n.dir) > 0;
}
