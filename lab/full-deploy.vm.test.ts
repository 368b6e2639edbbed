/**
 * The whole path on a real (virtual) machine: Rackhand in-process with its managed dnsmasq in the rack's network
 * namespace, a QEMU VM behind an ipmi_sim BMC, a deploy started through tRPC as the UI does it. Rackhand sets the
 * boot device and powers the VM on through ipmitool; the VM PXE-boots (iPXE → HTTP) into the agent RAM disk; the
 * agent inventories, wipes, writes the stand-in OS image, writes its network configuration; Rackhand sets boot
 * device disk and power-cycles; the installed OS prints its marker and the network file on the serial console.
 * Needs root, QEMU, OpenIPMI, ipmitool, dnsmasq, iproute2 (scripts/install-system-deps.sh test) — never skipped.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../server/app";
import { logLines, machines } from "../server/db/schema";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { until } from "../server/testing/until";
import type { LabArtifacts } from "./artifacts";
import type { RackhandClient } from "./client";
import { ConsoleWatch } from "./console-watch";
import { deployConsolePatterns, deployTimeline, formatTimeline } from "./phases";
import { startLabRackhand, stepSummary, waitForJob, type LabRackhand } from "./rackhand";
import { rackDown, rackUp, requireLabTools, vmRunning, type RackState } from "./rack";

const MARKER = "RACKHAND-OS-UP";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-vm-"));
// The kernel package and built RAM disks are kept between runs (content-addressed).
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");

let rack: RackState;
let rh: LabRackhand;
let app: App;
let client: RackhandClient;
let artifacts: LabArtifacts;
let serverLog: string[];
let machineId: number;

beforeAll(async () => {
  requireLabTools();
  const agent = await buildAgentBundle(work);
  const tag = crypto.randomBytes(2);
  rack = await rackUp({ dir: path.join(work, "rack"), prefix: `rv${tag.toString("hex").slice(0, 3)}`, net: `10.${200 + (tag[0]! % 50)}.${tag[1]}`, nodes: 1, memMiB: 1024, diskMiB: 128, disks: 2 });
  rh = await startLabRackhand({ dir: work, rack, agent, cacheDir, marker: MARKER, adminPassword: "vm-test-admin-password", debian: true });
  ({ app, client, artifacts, serverLog } = rh);
  machineId = rh.machines[0]!.machineId;
}, 600_000);

afterAll(async () => {
  await rh?.close(); // stops dnsmasq (a child of Rackhand) before its namespace goes
  await rackDown(path.join(work, "rack"));
  if (process.env.RACKHAND_KEEP_VM_TEST !== "1") fs.rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}, 60_000);

describe("a QEMU VM behind an ipmi_sim BMC", () => {
  it("deploys end to end: PXE → RAM disk agent → image + network → boot from disk → the OS's marker", async () => {
    const node = rack.nodes[0]!;
    expect(vmRunning(node)).toBe(false);
    // osNet waits for this node's address line, not the file's first line: the OS prints the file line by line, and
    // a clean-clone run read the console between "iface eth0 inet static" and its "address" line.
    const addressLine = new RegExp(`os-net: /etc/network/interfaces: +address ${node.ip.replaceAll(".", "\\.")}\\b`);
    const consoleWatch = new ConsoleWatch(node.consoleLog, { ...deployConsolePatterns(MARKER), osNet: addressLine });
    const t0 = Date.now();
    const { jobId } = (await client.machines.action.mutate({ id: machineId, action: "deploy" })) as { jobId?: number };
    expect(jobId).toBeGreaterThan(0);

    const { job, steps: all } = await waitForJob(app, jobId!, 360_000);
    const summary = stepSummary(all);
    expect(job.state, `${job.error}\n${summary}\n--- console:\n${consoleWatch.text().slice(-3000)}`).toBe("succeeded");

    // The installed system came up from its disk and found the network file configure_network wrote.
    await consoleWatch.waitFor("osUp", 120_000);
    await consoleWatch.waitFor("osNet", 30_000);
    const consoleText = consoleWatch.text();
    // The RAM disk loaded the driver of the VM's IDE controller by its PCI modalias (not on its always-load list).
    expect(consoleText).toMatch(/rackhand-init: drivers: .*\bata_piix\b.*\bvirtio_net\b/);
    expect(consoleText).toContain(`os-net: /etc/network/interfaces: iface`);
    expect(consoleText).toMatch(addressLine);

    const m = app.domain.db.select().from(machines).where(eq(machines.id, machineId)).get()!;
    expect(m.state).toBe("deployed");
    // Every step ran and succeeded; the agent's steps are the deploy's.
    expect(all.every((s) => s.state === "succeeded"), summary).toBe(true);
    expect(all.filter((s) => s.runner === "agent").map((s) => s.name)).toEqual(["inventory", "wipe", "write_image", "configure_network"]);
    const byName = (n: string) => all.filter((s) => s.name === n);
    expect(byName("write_image")[0]!.result).toMatchObject({ sha256: artifacts.image.sha256, bytes: artifacts.image.size, verified: true, target: "/dev/vda" });
    expect(byName("inventory")[0]!.result).toMatchObject({ disks: [expect.objectContaining({ name: "vda" }), expect.objectContaining({ name: "vdb" })] });
    expect(byName("configure_network")[0]!.result).toMatchObject({ written: expect.arrayContaining(["/etc/network/interfaces"]) });
    // Log lines: contiguous sequence numbers, each attributed to an agent step.
    const lines = app.domain.db.select().from(logLines).where(eq(logLines.jobId, jobId!)).orderBy(asc(logLines.seq)).all();
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
    expect(lines.some((l) => /^verified: \d+ bytes, sha256 [0-9a-f]{64} \(as expected\)/.test(l.text))).toBe(true);
    // The BMC was really driven: boot device disk now, and DHCP came from Rackhand's dnsmasq in the namespace.
    expect(fs.readFileSync(path.join(node.dir, "boot"), "utf8").trim()).not.toBe("pxe");
    expect(serverLog.some((l) => l.includes("DHCPACK") && l.includes(node.mac))).toBe(true);

    // Phases, timed from the deploy click (written to the test output; the benchmark reports them against targets).
    const timeline = deployTimeline({ db: app.domain.db, jobId: jobId!, mac: node.mac, clickAt: t0, serverLog, consoleSeen: consoleWatch.seen });
    console.log(`full deploy phases (ms since the deploy click):\n${formatTimeline(timeline)}`);
    consoleWatch.stop();
  }, 480_000);

  it("releases the deployed machine: the clean job boots the agent again, wipes the disk and powers the VM off", async () => {
    const node = rack.nodes[0]!;
    const before = fs.readFileSync(node.disk).subarray(0, 1 << 20);
    expect(before.some((b) => b !== 0)).toBe(true); // the deployed image's MBR and boot partition
    const { jobId } = (await client.machines.action.mutate({ id: machineId, action: "release" })) as { jobId?: number };
    expect(jobId).toBeGreaterThan(0);
    const { job, steps: all } = await waitForJob(app, jobId!, 300_000);
    expect(job.state, stepSummary(all)).toBe("succeeded");
    expect(app.domain.db.select().from(machines).where(eq(machines.id, machineId)).get()!.state).toBe("available");
    // The wipe reached the VM's real disk (the host file behind it): the first and the last MiB are zero.
    const disk = fs.readFileSync(node.disk);
    expect(disk.subarray(0, 1 << 20).every((b) => b === 0)).toBe(true);
    expect(disk.subarray(disk.length - (1 << 20)).every((b) => b === 0)).toBe(true);
    await until("the VM to be powered off", () => !vmRunning(node), 30_000);
  }, 360_000);

  it("deploys onto software RAID 1 (mdadm over both disks) with a post-install script, from the Debian agent environment: both members carry the image, the OS boots from one", async () => {
    const node = rack.nodes[0]!;
    // The agent runs in the debootstrap root file system the RAM disk fetches and switches to.
    await client.netboot.saveSettings.mutate({ ...(await client.netboot.settings.query()), agentEnvironment: "debian" });
    const raidProfile = await client.osProfiles.create.mutate({
      name: "Stand-in OS on RAID 1",
      kind: "image",
      osFamily: "debian",
      imageUrl: `http://${rack.hostAddress}:${new URL(app.url).port}/boot/${artifacts.image.url}`,
      imageSha256: artifacts.image.sha256,
      imageFormat: "raw.gz",
      // The root file system's partition is /dev/md127p2 on the array: named by its label instead.
      options: {
        netConfig: "ifupdown",
        rootPartition: "LABEL=RHROOT",
        raid: { level: 1, devices: ["/dev/vda", "/dev/vdb"], name: "root" },
        // Runs in the RAM disk after the image: sees the array the deploy built.
        postInstallScript: {
          script: 'echo "post-install: $(cat /proc/mdstat | grep -o "md[0-9]* : active raid1")"\necho "post-install: in Debian $(cat /etc/debian_version)"\n',
          timeoutS: 60,
        },
      },
    });
    await client.machines.update.mutate({ id: machineId, osProfileId: raidProfile.id });
    const consoleWatch = new ConsoleWatch(node.consoleLog, { ...deployConsolePatterns(MARKER), osNet: /os-net: \/etc\/network\/interfaces: .*address/ });
    const { jobId } = (await client.machines.action.mutate({ id: machineId, action: "deploy" })) as { jobId?: number };
    const { job, steps: all } = await waitForJob(app, jobId!, 360_000);
    expect(job.state, `${job.error}\n${stepSummary(all)}\n--- console:\n${consoleWatch.text().slice(-3000)}`).toBe("succeeded");
    expect(all.find((s) => s.name === "raid")!.result).toMatchObject({ device: "/dev/md/root", level: 1, devices: ["/dev/vda", "/dev/vdb"] });
    expect(all.find((s) => s.name === "write_image")!.result).toMatchObject({ target: "/dev/md/root", sha256: artifacts.image.sha256, verified: true });
    expect(all.find((s) => s.name === "configure_network")!.result).toMatchObject({ written: ["/etc/network/interfaces"] });
    expect(all.find((s) => s.name === "run_script")!.result).toMatchObject({ exitCode: 0 });
    const lines = app.domain.db.select().from(logLines).where(eq(logLines.jobId, jobId!)).all();
    expect(lines.some((l) => /^post-install: md\d+ : active raid1$/.test(l.text))).toBe(true);
    expect(lines.some((l) => /^post-install: in Debian \d+\.\d+$/.test(l.text))).toBe(true);
    expect(consoleWatch.text()).toMatch(/rackhand-init: Debian \d+\.\d+ root file system up/);
    // RAID 1 with metadata at the end: both host files start with the same bytes, the image's MBR and boot partition.
    const [a, b] = node.disks.map((d) => fs.readFileSync(d));
    const head = (buf: Buffer) => crypto.createHash("sha256").update(buf.subarray(0, artifacts.image.size)).digest("hex");
    expect(head(a!)).toBe(head(b!));
    expect(a!.subarray(510, 512)).toEqual(Buffer.from([0x55, 0xaa]));
    // Booted from its disk (a member), the OS finds the network file configure_network wrote through the array.
    await consoleWatch.waitFor("osUp", 120_000);
    await consoleWatch.waitFor("osNet", 5_000);
    consoleWatch.stop();
  }, 480_000);
});
