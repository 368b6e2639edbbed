/**
 * `npm run test:installer` (opt-in: a full debootstrap under TCG takes ~30 min, beyond the suite's budget).
 * A QEMU VM behind an ipmi_sim BMC, Rackhand in-process with managed dnsmasq and the managed apt-cacher-ng. The VM's
 * disk is first made a used server's disk by a script in the Debian agent environment (DOS table, ext4, swap, an LVM
 * volume group, an md RAID 1 member); then the machine is reinstalled through tRPC, as the UI's Reinstall does,
 * with the "Debian (agent install)" profile: the agent clears the disk, partitions it, debootstraps Debian 12
 * through the proxy, configures it and installs GRUB; Rackhand boots it from disk; its serial console shows the
 * login prompt and its SSH port answers on the static address. A second install shows the warm proxy cache.
 * Needs root, QEMU, OpenIPMI, ipmitool, dnsmasq, apt-cacher-ng, debootstrap (scripts/install-system-deps.sh test).
 */
import crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../server/app";
import { logLines } from "../server/db/schema";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { AGENT_INSTALL_PROFILE, formatRun, machineState, runAgentInstall, TEST_SSH_KEY, USED_DISK_SCRIPT, type InstallRun } from "./agent-install";
import type { RackhandClient } from "./client";
import { rackDown, rackUp, requireLabTools, type RackState } from "./rack";
import { startLabRackhand, stepSummary, waitForJob, type LabRackhand } from "./rackhand";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-installer-"));
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");
const MIN = 60_000;

let rack: RackState;
let rh: LabRackhand;
let app: App;
let client: RackhandClient;
let machineId: number;
let hostname: string;
const runs: InstallRun[] = [];

beforeAll(async () => {
  requireLabTools();
  for (const [tool, pkg] of [["apt-cacher-ng", "apt-cacher-ng"], ["debootstrap", "debootstrap"], ["debugfs", "e2fsprogs"], ["sfdisk", "fdisk"]]) {
    if (spawnSync("sh", ["-c", 'command -v "$1" || test -x "/usr/sbin/$1"', "sh", tool!]).status !== 0) throw new Error(`${tool} is not installed (Debian package ${pkg}): run scripts/install-system-deps.sh test`);
  }
  const agent = await buildAgentBundle(work);
  const tag = crypto.randomBytes(2);
  rack = await rackUp({ dir: path.join(work, "rack"), prefix: `ri${tag.toString("hex").slice(0, 3)}`, net: `10.${150 + (tag[0]! % 40)}.${tag[1]}`, nodes: 1, memMiB: 1536, diskMiB: 4096 });
  rh = await startLabRackhand({ dir: work, rack, agent, cacheDir, marker: "RACKHAND-OS-UP", adminPassword: "installer-test-admin-password", debian: true });
  ({ app, client } = rh);
  machineId = rh.machines[0]!.machineId;
  hostname = rack.nodes[0]!.name;
  // The Debian agent environment, and the managed package proxy on the rack's host address.
  const proxyPort = 20000 + crypto.randomInt(12000);
  await client.netboot.saveSettings.mutate({ ...(await client.netboot.settings.query()), agentEnvironment: "debian", proxyMode: "managed", proxyPort });
}, 20 * MIN);

afterAll(async () => {
  for (const [i, r] of runs.entries()) console.log(formatRun(i === 0 ? "cold proxy cache" : "warm proxy cache", r));
  await rh?.close();
  await rackDown(path.join(work, "rack"));
  if (process.env.RACKHAND_KEEP_VM_TEST !== "1") fs.rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}, MIN);

describe("agent install (Debian 12 by debootstrap) onto a used disk", () => {
  it("prepares a used server's disk: partition table, ext4, swap, an LVM volume group, an md RAID member", async () => {
    const image = rh.artifacts.image;
    const prep = await client.osProfiles.create.mutate({
      name: "Used-disk preparation",
      kind: "image",
      osFamily: "debian",
      imageUrl: `http://${rack.hostAddress}:${new URL(app.url).port}/boot/${image.url}`,
      imageSha256: image.sha256,
      imageFormat: "raw.gz",
      options: { netConfig: "ifupdown", rootPartition: `/dev/vda${image.rootPartition}`, postInstallScript: { script: USED_DISK_SCRIPT, interpreter: "/bin/bash", timeoutS: 600 } },
    });
    await client.machines.update.mutate({ id: machineId, osProfileId: prep.id });
    const { jobId } = (await client.machines.action.mutate({ id: machineId, action: "deploy" })) as { jobId?: number };
    const { job, steps } = await waitForJob(app, jobId!, 15 * MIN);
    expect(job.state, `${job.error}\n${stepSummary(steps)}`).toBe("succeeded");
    const text = app.domain.db.select().from(logLines).where(eq(logLines.jobId, jobId!)).all().map((l) => l.text).join("\n");
    expect(text).toMatch(/used-disk: \/dev\/vda1 ext4/);
    expect(text).toMatch(/used-disk: \/dev\/vda2 swap/);
    expect(text).toMatch(/used-disk: \/dev\/vda3 LVM2_member/);
    expect(text).toMatch(/used-disk: \/dev\/vda4 linux_raid_member/);
    expect(text).toMatch(/used-disk: LVM \/dev\/vda3 oldvg/);
    expect(machineState(app, machineId)).toBe("deployed");
  }, 20 * MIN);

  it("clears it, installs Debian 12 through the proxy, boots it from disk: login prompt on the console, SSH on the static address", async () => {
    const profile = await client.osProfiles.create.mutate(AGENT_INSTALL_PROFILE);
    await client.machines.update.mutate({ id: machineId, osProfileId: profile.id });
    const node = rack.nodes[0]!;
    const r = await runAgentInstall({ app, client, machineId, node, hostname, jobTimeoutMs: 110 * MIN, bootTimeoutMs: 10 * MIN });
    runs.push(r);
    console.log(formatRun("cold proxy cache", r));
    expect(r.state, `${r.error}\n${r.steps.map((s) => `${s.name} ${s.state} ${s.error ?? ""}`).join("\n")}\n--- console:\n${r.console.slice(-3000)}`).toBe("succeeded");
    expect(r.steps.filter((s) => ["clear_disks", "partition", "debootstrap", "configure_os", "bootloader"].includes(s.name)).map((s) => s.name)).toEqual(["clear_disks", "partition", "debootstrap", "configure_os", "bootloader"]);
    // The used disk was cleared layer by layer.
    const clear = r.steps.find((s) => s.name === "clear_disks")!.result as { actions: string[] };
    expect(clear.actions).toEqual(expect.arrayContaining(["vgremove -ff oldvg", "pvremove /dev/vda3", "mdadm --zero-superblock /dev/vda4"]));
    expect(clear.actions.indexOf("vgremove -ff oldvg")).toBeLessThan(clear.actions.indexOf("mdadm --zero-superblock /dev/vda4"));
    expect(r.steps.find((s) => s.name === "partition")!.result).toMatchObject({ firmware: "bios", partitions: [expect.objectContaining({ role: "bios" }), expect.objectContaining({ role: "swap" }), expect.objectContaining({ role: "root", device: "/dev/vda3" })] });
    expect(r.steps.find((s) => s.name === "bootloader")!.result).toMatchObject({ firmware: "bios", cmdline: expect.stringContaining("console=ttyS0,115200n8") });
    // Booted from disk: the login prompt, and SSH on the address from the network model.
    expect(r.clickToLogin).toBeGreaterThan(0);
    expect(r.sshBanner).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(machineState(app, machineId)).toBe("deployed");
    // Every line recorded: contiguous sequence numbers, each phase's lines there.
    const lines = app.domain.db.select().from(logLines).where(eq(logLines.jobId, r.jobId)).orderBy(asc(logLines.seq)).all();
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
    const text = lines.map((l) => l.text).join("\n");
    for (const re of [/^swapoff|no LVM|vgremove -ff oldvg/m, /^debootstrap bookworm from \S+ through the proxy http:\/\//m, /^I: Base system installed successfully\.$/m, /^initramfs drivers: targeted \(MODULES=dep\)$/m, /^wrote \/etc\/fstab/m, /^user ops \(uid \d+\) created/m, /^grub\.cfg: \d+ entries/m]) {
      expect(text).toMatch(re);
    }
    // The installed root file system, read from the VM's disk on the host: fstab by UUID, the key, the network file.
    const files = readInstalled(node.disk, ["/etc/fstab", "/home/ops/.ssh/authorized_keys", "/etc/network/interfaces", "/etc/hostname", "/etc/initramfs-tools/conf.d/rackhand-drivers"]);
    expect(files["/etc/fstab"]).toMatch(/^UUID=[0-9a-f-]{36} \/ ext4 /m);
    expect(files["/etc/fstab"]).toMatch(/^UUID=[0-9a-f-]{36} none swap /m);
    expect(files["/home/ops/.ssh/authorized_keys"]).toBe(`${TEST_SSH_KEY}\n`);
    expect(files["/etc/network/interfaces"]).toContain(`address ${node.ip}`);
    expect(files["/etc/hostname"]).toBe(`${hostname}\n`);
    expect(files["/etc/initramfs-tools/conf.d/rackhand-drivers"]).toMatch(/^MODULES=dep$/m);
  }, 130 * MIN);

  it("installs again with a warm proxy cache", async () => {
    const r = await runAgentInstall({ app, client, machineId, node: rack.nodes[0]!, hostname, jobTimeoutMs: 110 * MIN, bootTimeoutMs: 10 * MIN });
    runs.push(r);
    console.log(formatRun("warm proxy cache", r));
    expect(r.state, `${r.error}\n${r.steps.map((s) => `${s.name} ${s.state} ${s.error ?? ""}`).join("\n")}`).toBe("succeeded");
    expect(r.sshBanner).toMatch(/^SSH-2\.0-OpenSSH/);
    // Everything came from the cache but the indexes acng revalidates.
    expect(r.proxy.upstreamBytes).toBeLessThan(runs[0]!.proxy.upstreamBytes / 5);
    expect(machineState(app, machineId)).toBe("deployed");
  }, 130 * MIN);
});

/** Files of the installed root (GPT partition 3, ext4; sfdisk reads the table) read with debugfs through a read-only offset loop device. */
function readInstalled(disk: string, files: string[]): Record<string, string> {
  const dump = spawnSync("sfdisk", ["--json", disk], { encoding: "utf8" }).stdout;
  const part = (JSON.parse(dump || "{}") as { partitiontable?: { label?: string; partitions?: { node: string; start: number; size: number }[] } }).partitiontable;
  const p3 = part?.partitions?.find((p) => p.node.endsWith("3"));
  if (part?.label !== "gpt" || !p3) throw new Error(`no GPT partition 3 on ${disk}: ${dump}`);
  const loop = spawnSync("losetup", ["--show", "-f", "-r", "-o", String(p3.start * 512), "--sizelimit", String(p3.size * 512), disk], { encoding: "utf8" }).stdout.trim();
  if (!loop) throw new Error("losetup failed");
  try {
    const out: Record<string, string> = {};
    for (const f of files) out[f] = spawnSync("debugfs", ["-c", "-R", `cat ${f}`, loop], { encoding: "utf8" }).stdout;
    return out;
  } finally {
    spawnSync("losetup", ["-d", loop]);
  }
}
