/**
 * Issue 14 point 5, proven by booting: a QEMU VM with two NICs on the lab bridge is given, through tRPC as an
 * operator would, a bond (active-backup) of both, a VLAN on the bond and an IPv4 and an IPv6 address on the VLAN,
 * allocated from two subnets created through tRPC. It is deployed with a real Debian (debootstrap: systemd, the
 * network stack, a serial getty; ramdisk/debian-os-image.ts, built on the host and cached by content) whose network
 * file configure_network writes. After the reboot, the installed system reports its bond, VLAN and addresses on the
 * serial console, and the test reaches it on both addresses over the bridge: the host's side of the VLAN is an
 * interface with an IPv4 and an IPv6 address (a TCP connection to the image's greeting on each). The host's kernel
 * may have neither 802.1Q VLAN devices nor bridge VLAN filtering (this lab's has neither), so the host's VLAN
 * interface is an access port in user space (lab/vlan-port.pl): a tap on the bridge carrying the VLAN tagged, and an
 * untagged tap with the addresses.
 * Stacks: ifupdown always; netplan (systemd-networkd) and NetworkManager when RACKHAND_NET_STACKS names them
 * (`npm run test:net-formats` runs all three).
 * Needs root, QEMU, OpenIPMI, ipmitool, dnsmasq, iproute2, debootstrap and the Debian mirror — never skipped.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../server/app";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { until } from "../server/testing/until";
import { DEBIAN_NET_STACKS, HELLO_PORT, type DebianNetStack } from "../ramdisk/debian-os-image";
import { debianImage } from "./artifacts";
import type { RackhandClient } from "./client";
import { ConsoleWatch } from "./console-watch";
import { startLabRackhand, stepSummary, waitForJob, type LabRackhand } from "./rackhand";
import { rackDown, rackUp, requireLabTools, type RackState } from "./rack";

const MARKER = "RACKHAND-DEBIAN-UP";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-netvm-"));
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");
const STACKS: DebianNetStack[] = (process.env.RACKHAND_NET_STACKS ?? "ifupdown").split(",").map((s) => {
  if (!(DEBIAN_NET_STACKS as readonly string[]).includes(s)) throw new Error(`RACKHAND_NET_STACKS: ${s} is not one of ${DEBIAN_NET_STACKS.join(", ")}`);
  return s as DebianNetStack;
});

const tag = crypto.randomBytes(3);
const VID = 100 + (tag[2]! % 900);
// The VLAN's subnets, unique to this run: 172.16-31.x.0/24 and fdxx:xxxx:xxxx::/64.
const NET4 = `172.${16 + (tag[0]! % 16)}.${tag[1]}`;
// Written as the server writes addresses (RFC 5952: no leading zeros in a group), so "0ac4" is "ac4": with the padded
// form the address check failed whenever the random group began with 0 (1 run in 16).
const NET6 = `fd${tag.toString("hex").slice(0, 2)}:${tag.readUInt16BE(1).toString(16)}:${VID.toString(16)}`;

let rack: RackState;
let rh: LabRackhand;
let app: App;
let client: RackhandClient;
let machineId: number;
let vlanPort: ChildProcess | null = null;
const VLAN_PORT = path.join(path.dirname(fileURLToPath(import.meta.url)), "vlan-port.pl");

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** Connect to the image's greeting port and return what it says (or throw with the reason). */
function hello(host: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port: HELLO_PORT, timeout: timeoutMs });
    let data = "";
    sock.on("data", (d) => (data += d.toString()));
    sock.on("end", () => resolve(data.trim()));
    sock.on("timeout", () => {
      sock.destroy();
      reject(new Error(`${host}:${HELLO_PORT}: no answer in ${timeoutMs} ms`));
    });
    sock.on("error", reject);
  });
}

beforeAll(async () => {
  requireLabTools();
  if (spawnSync("sh", ["-c", "command -v debootstrap"]).status !== 0) throw new Error("debootstrap is not installed (scripts/install-system-deps.sh test)");
  const route = spawnSync("ip", ["-4", "route", "show", "to", "match", `${NET4}.1`], { encoding: "utf8" }).stdout.trim();
  if (route && !route.startsWith("default")) throw new Error(`${NET4}.0/24 is already routed here (${route}): run again`);
  const agent = await buildAgentBundle(work);
  const prefix = `nv${tag.toString("hex").slice(0, 3)}`;
  rack = await rackUp({ dir: path.join(work, "rack"), prefix, net: `10.${200 + (tag[0]! % 50)}.${tag[1]}`, nodes: 1, nics: 2, memMiB: 768, diskMiB: 640 });
  // The host's side of the VLAN: the trunk tap joins the bridge (no IPv6 of its own), the access tap gets the
  // subnets' gateway addresses. The bridge itself keeps IPv6 off; only the access tap has it.
  const trunk = `${prefix}vt`;
  const access = `${prefix}vl`;
  if (spawnSync("sh", ["-c", "command -v perl"]).status !== 0) throw new Error("perl is not installed (Debian package perl-base)");
  vlanPort = spawn("perl", [VLAN_PORT, trunk, access, String(VID)], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    vlanPort!.stdout!.once("data", () => resolve());
    vlanPort!.once("exit", (c) => reject(new Error(`lab/vlan-port.pl exited (${c})`)));
  });
  fs.writeFileSync(`/proc/sys/net/ipv6/conf/${trunk}/disable_ipv6`, "1");
  ip(["link", "set", trunk, "master", rack.bridge, "up"]);
  fs.writeFileSync(`/proc/sys/net/ipv6/conf/${access}/disable_ipv6`, "0");
  ip(["addr", "add", `${NET4}.1/24`, "dev", access]);
  ip(["addr", "add", `${NET6}::1/64`, "dev", access, "nodad"]);
  ip(["link", "set", access, "up"]);
  rh = await startLabRackhand({ dir: work, rack, agent, cacheDir, marker: "RACKHAND-OS-UP", adminPassword: "vm-test-admin-password" });
  ({ app, client } = rh);
  machineId = rh.machines[0]!.machineId;
}, 900_000);

afterAll(async () => {
  await rh?.close();
  if (vlanPort && vlanPort.exitCode === null) vlanPort.kill(); // its taps go with it
  await rackDown(path.join(work, "rack"));
  if (process.env.RACKHAND_KEEP_VM_TEST !== "1") fs.rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}, 60_000);

describe("a deployed Debian with a bond, a VLAN on it and IPv4 + IPv6 addresses", () => {
  let v4 = "";
  let v6 = "";

  it("allocates the VLAN's addresses from subnets created through tRPC", async () => {
    const node = rack.nodes[0]!;
    const s4 = await client.subnets.create.mutate({ name: `vlan${VID}-v4`, cidr: `${NET4}.0/24`, gateway: `${NET4}.1`, vlanId: VID });
    const s6 = await client.subnets.create.mutate({ name: `vlan${VID}-v6`, cidr: `${NET6}::/64`, gateway: `${NET6}::1`, vlanId: VID });
    const vlan = `bond0.${VID}`;
    await client.machines.setNetwork.mutate({
      id: machineId,
      network: {
        interfaces: [
          { kind: "ethernet", name: "eth0", mac: node.mac, mode: "none", ipv6Mode: "none" },
          { kind: "ethernet", name: "eth1", mac: node.extraMacs![0]!, mode: "none", ipv6Mode: "none" },
          { kind: "bond", name: "bond0", members: ["eth0", "eth1"], bondMode: "active-backup", miimon: 100, mode: "none", ipv6Mode: "none" },
          { kind: "vlan", name: vlan, parent: "bond0", vlanId: VID, mode: "auto", subnetId: s4.id, ipv6Mode: "auto", subnet6Id: s6.id },
        ],
      },
    });
    const got = (await client.machines.network.query({ id: machineId })).network.interfaces.find((i) => i.name === vlan)!;
    expect(got.ipv4).toBe(`${NET4}.2/24`); // the first address after the gateway
    expect(got.ipv6).toBe(`${NET6}::2/64`);
    v4 = got.ipv4!.split("/")[0]!;
    v6 = got.ipv6!.split("/")[0]!;
  });

  for (const stack of STACKS) {
    it(`${stack}: deploys, comes up with the bond, the VLAN and both addresses, and answers on both`, async () => {
      expect(v4 && v6, "the addresses were allocated").toBeTruthy();
      const node = rack.nodes[0]!;
      const t0 = Date.now();
      const img = debianImage({ dataDir: rh.dataDir, cacheDir, stack, marker: MARKER, log: (l) => console.log(`[debian-image] ${l}`) });
      const buildS = (Date.now() - t0) / 1000;
      const port = new URL(app.url).port;
      const name = `Debian (${stack})`;
      const fields = {
        name,
        kind: "image" as const,
        osFamily: "debian" as const,
        imageUrl: `http://${rack.hostAddress}:${port}/boot/${img.url}`,
        imageSha256: img.sha256,
        imageFormat: "raw.zst" as const,
        options: { netConfig: stack, rootPartition: `/dev/vda${img.rootPartition}` },
      };
      const profile = await client.osProfiles.create.mutate(fields);
      await client.machines.update.mutate({ id: machineId, osProfileId: profile.id });

      const watch = new ConsoleWatch(node.consoleLog, { up: new RegExp(`${MARKER} stack=${stack} waited=\\d+\\n`) });
      const state = (await client.machines.get.query({ id: machineId })).state;
      const t1 = Date.now();
      const { jobId } = (await client.machines.action.mutate({ id: machineId, action: state === "deployed" ? "reinstall" : "deploy" })) as { jobId?: number };
      expect(jobId).toBeGreaterThan(0);
      const { job, steps } = await waitForJob(app, jobId!, 600_000);
      expect(job.state, `${job.error}\n${stepSummary(steps)}\n--- console:\n${watch.text().slice(-3000)}`).toBe("succeeded");
      const written = steps.find((s) => s.name === "configure_network")!.result as { written: string[] };
      const deployedS = (Date.now() - t1) / 1000;

      await watch.waitFor("up", 240_000);
      const upS = (Date.now() - t1) / 1000;
      const text = watch.text();
      // The unit's lines reach the console through the journal ("[ t] rackhand-net-report[pid]: rackhand-net: …").
      const report = text.split("\n").flatMap((l) => {
        const at = Math.max(l.indexOf("rackhand-net: "), l.indexOf(`${MARKER} `));
        return at >= 0 && l.includes("rackhand-net-report") ? [l.slice(at)] : [];
      });
      console.log(`${stack}: image ${img.cached ? "cached" : `built in ${buildS.toFixed(0)} s`}; job ${deployedS.toFixed(0)} s, network report ${upS.toFixed(0)} s after the deploy click; configure_network wrote ${written.written.join(", ")}\n${report.join("\n")}`);
      // The installed system's own view: the bond of both NICs, the VLAN on it, both addresses on the VLAN.
      const bond = /^rackhand-net: bond bond0 mode=(\S+) slaves=(\S+) active=(\S+)$/.exec(report.find((l) => l.startsWith("rackhand-net: bond bond0 ")) ?? "");
      expect(bond, "bond0 reported").not.toBeNull();
      expect(bond![1]).toBe("active-backup");
      expect(bond![2]!.split(",").sort()).toEqual(["eth0", "eth1"]);
      expect(["eth0", "eth1"]).toContain(bond![3]);
      expect(report).toContainEqual(expect.stringMatching(new RegExp(`^rackhand-net: vlan \\d+: bond0\\.${VID}@bond0: .* vlan protocol 802\\.1Q id ${VID} `)));
      const addrLine = report.find((l) => l.startsWith(`rackhand-net: addr bond0.${VID}@bond0 `)) ?? "";
      expect(addrLine).toMatch(/\sUP\s/);
      expect(addrLine.split(/\s+/)).toEqual(expect.arrayContaining([`${v4}/24`, `${v6}/64`]));
      // Exactly that network: the NICs have no address of their own, the bond only its link-local one (no SLAAC from
      // the provisioning network's router advertisements: IPv6 is none there).
      const addrs = (ifname: string) => (report.find((l) => l.startsWith(`rackhand-net: addr ${ifname} `)) ?? "").trim().split(/\s+/);
      for (const nic of ["eth0", "eth1"]) expect(addrs(nic).slice(2, 4)).toEqual([nic, "UP"]);
      expect(addrs("eth0").slice(4)).toEqual([]);
      expect(addrs("eth1").slice(4)).toEqual([]);
      expect(addrs("bond0").slice(4).filter((a) => !a.startsWith("fe80:"))).toEqual([]);
      // Reached over the bridge's VLAN on each address.
      const from4 = await until(`${v4}:${HELLO_PORT} to answer`, () => hello(v4).catch(() => null), 30_000);
      const from6 = await until(`[${v6}]:${HELLO_PORT} to answer`, () => hello(v6).catch(() => null), 30_000);
      expect(from4).toBe("rackhand-hello rackhand-debian");
      expect(from6).toBe("rackhand-hello rackhand-debian");
      watch.stop();
    }, 900_000);
  }
});
