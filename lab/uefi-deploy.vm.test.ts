/**
 * UEFI and Secure Boot deploys end to end on real firmware: two QEMU q35 VMs under TCG, one with OVMF (no Secure
 * Boot) and one with OVMF's Secure Boot code and Microsoft's keys enrolled, each behind an ipmi_sim BMC driven by
 * real ipmitool. A deploy clicked through tRPC: Rackhand sets the boot device with the EFI flag and power-cycles;
 * OVMF PXE-boots shim → Debian's signed GRUB → Rackhand's per-MAC entry → Debian's signed kernel and Rackhand's
 * RAM disk; the agent checks the UEFI stand-in image against the firmware before wiping, writes it, checks the ESP's
 * \EFI\BOOT\BOOTX64.EFI and creates the NVRAM entry with efibootmgr; Rackhand sets boot device disk (EFI) and
 * power-cycles; the firmware boots the disk (shim → signed GRUB → signed kernel) and the OS prints its marker and
 * the Secure Boot state it read from the firmware. The unsigned-loader refusal is in uefi-netboot.vm.test.ts.
 * Needs root, QEMU, OVMF, OpenIPMI, ipmitool, dnsmasq, iproute2, shim-signed, grub-efi-amd64-signed — never skipped.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../server/app";
import { events, logLines, machines } from "../server/db/schema";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import type { LabArtifacts } from "./artifacts";
import type { RackhandClient } from "./client";
import { ConsoleWatch } from "./console-watch";
import { deployConsolePatterns, deployTimeline, formatTimeline } from "./phases";
import { startLabRackhand, stepSummary, waitForJob, type LabRackhand } from "./rackhand";
import { rackDown, rackUp, requireLabTools, type RackState, type VirtualNode } from "./rack";

const MARKER = "RACKHAND-OS-UP";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-uefi-deploy-"));
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");

let rack: RackState;
let rh: LabRackhand;
let app: App;
let client: RackhandClient;
let artifacts: LabArtifacts;
let serverLog: string[];

beforeAll(async () => {
  requireLabTools();
  const agent = await buildAgentBundle(work);
  const tag = crypto.randomBytes(2);
  rack = await rackUp({
    dir: path.join(work, "rack"),
    prefix: `ru${tag.toString("hex").slice(0, 3)}`,
    net: `10.${100 + (tag[0]! % 40)}.${tag[1]}`,
    nodes: 2,
    // Debian's signed GRUB needs more than 256 MiB to place the kernel; the RAM disk wants ~300 MiB more.
    memMiB: 1024,
    diskMiB: 96,
    firmware: ["uefi", "secureboot"],
  });
  // The operator's firmware setting "uefi": the very first boot-device command already carries the EFI flag.
  rh = await startLabRackhand({ dir: work, rack, agent, cacheDir, marker: MARKER, adminPassword: "uefi-vm-test-admin-password", imageFirmware: "uefi", machineFirmware: "uefi" });
  ({ app, client, artifacts, serverLog } = rh);
  expect(artifacts.image.firmware).toBe("uefi");
}, 600_000);

afterAll(async () => {
  await rh?.close();
  await rackDown(path.join(work, "rack"));
  if (process.env.RACKHAND_KEEP_VM_TEST !== "1") fs.rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}, 60_000);

async function deploy(node: VirtualNode, machineId: number) {
  const watch = new ConsoleWatch(node.consoleLog, {
    ...deployConsolePatterns(MARKER),
    lockdown: /Kernel is locked down from EFI Secure Boot/,
    osFirmware: /os-firmware: efi=\S+ secureboot=\S+\r?\n/,
  });
  const t0 = Date.now();
  const { jobId } = (await client.machines.action.mutate({ id: machineId, action: "deploy" })) as { jobId?: number };
  expect(jobId).toBeGreaterThan(0);
  const { job, steps: all } = await waitForJob(app, jobId!, 900_000);
  expect(job.state, `${node.firmware}: ${job.error}\n${stepSummary(all)}\n--- console:\n${watch.text().slice(-4000)}`).toBe("succeeded");
  await watch.waitFor("osUp", 300_000);
  await watch.waitFor("osFirmware", 30_000);
  const timeline = deployTimeline({ db: app.domain.db, jobId: jobId!, mac: node.mac, clickAt: t0, serverLog, consoleSeen: watch.seen });
  console.log(`${node.firmware} deploy phases (ms since the deploy click):\n${formatTimeline(timeline)}`);
  watch.stop();
  const lines = app.domain.db.select().from(logLines).where(eq(logLines.jobId, jobId!)).orderBy(asc(logLines.seq)).all().map((l) => l.text);
  return { jobId: jobId!, steps: all, lines, console: watch.text() };
}

describe("UEFI deploys on OVMF (q35, TCG) behind ipmi_sim BMCs", () => {
  it("a UEFI VM and a Secure Boot VM each deploy end to end: UEFI PXE → RAM disk → image → efibootmgr entry → boot from disk → marker", async () => {
    const [uefi, sb] = rh.machines.map((m) => ({ node: m.node, machineId: m.machineId }));
    const results = await Promise.all([deploy(uefi!.node, uefi!.machineId), deploy(sb!.node, sb!.machineId)]);
    for (const [i, r] of results.entries()) {
      const { node, machineId } = [uefi!, sb!][i]!;
      const secure = node.firmware === "secureboot";
      expect(app.domain.db.select().from(machines).where(eq(machines.id, machineId)).get()).toMatchObject({ state: "deployed", bootFirmware: "uefi", bootArch: 7 });
      // The firmware check before the wipe, the ESP check and the NVRAM entry after the write: in the job log.
      expect(r.lines).toContain("image check: GPT, 2 partitions, EFI System Partition #1 (24 MiB), no BIOS boot code; this machine booted with UEFI firmware: the image can boot on it");
      expect(r.lines.some((l) => /^ESP check: partition 1 of \/dev\/vda \(FAT16\) holds \\EFI\\BOOT\\BOOTX64\.EFI \(\d+ bytes, an EFI executable\)/.test(l)), r.lines.join("\n")).toBe(true);
      const created = r.lines.map((l) => /^efibootmgr: created Boot([0-9A-F]{4}) "Rackhand deployed OS" → \/dev\/vda partition 1 \\EFI\\BOOT\\BOOTX64\.EFI; BootOrder (\S+)$/.exec(l)).find(Boolean);
      expect(created, r.lines.join("\n")).toBeTruthy();
      expect(created![2]!.split(",")[0]).toBe(created![1]); // first in BootOrder
      expect(r.steps.find((s) => s.name === "write_image")!.result).toMatchObject({
        sha256: artifacts.image.sha256,
        verified: true,
        boot: { firmware: "uefi", esp: { partition: 1, fat: 16 }, nvram: `created Boot${created![1]}` },
      });
      // Both boot-device commands carried the EFI flag (recorded by the server when ipmitool succeeded).
      const boots = app.domain.db.select().from(events).where(and(eq(events.machineId, machineId), eq(events.kind, "bootdev.set"))).all();
      expect(boots.map((e) => e.payload)).toEqual(expect.arrayContaining([expect.objectContaining({ device: "pxe", efi: true }), expect.objectContaining({ device: "disk", efi: true, persistent: true })]));
      // The deployed system came up from its disk under the firmware it was meant for.
      expect(r.console).toMatch(new RegExp(`os-firmware: efi=yes secureboot=${secure ? 1 : 0}`));
      const diskBoot = r.console.slice(r.console.lastIndexOf("rackhand-init:"));
      const loaded = /BdsDxe: loading (Boot[0-9A-F]{4}) "([^"]*)"/.exec(diskBoot);
      console.log(`${node.firmware}: the firmware booted the disk through ${loaded ? `${loaded[1]} "${loaded[2]}"` : "(no BdsDxe line)"}`);
      expect(loaded?.[2]).toMatch(/^(Rackhand deployed OS|UEFI Misc Device.*)$/);
      if (secure) expect(r.console).toMatch(/Kernel is locked down from EFI Secure Boot/); // the RAM disk ran under lockdown
    }
  }, 1_500_000);
});
