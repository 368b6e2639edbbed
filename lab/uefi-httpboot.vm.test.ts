/**
 * UEFI HTTP Boot on real firmware (QEMU q35 + OVMF without Secure Boot, TCG), no TFTP anywhere: a virtual rack
 * node (lab/rack.ts, firmware uefi, httpBoot: OVMF's PXE boot entries turned off, so its "UEFI HTTPv4" entry is
 * the NIC's first) behind an ipmi_sim BMC, Rackhand in-process with its managed dnsmasq. A deploy click: Rackhand
 * sets boot device pxe (EFI flag) and powers the VM on through the BMC; OVMF's HTTP Boot client asks DHCP with
 * vendor class HTTPClient (client architecture 16), Rackhand's dnsmasq answers with the URL of snponly.efi on
 * Rackhand's own HTTP server (option 60 HTTPClient echoed), OVMF fetches and starts it; iPXE's DHCP gets
 * boot.ipxe as an http:// URL too, which chains the machine's per-MAC script; kernel and RAM disk come over HTTP;
 * the agent in the RAM disk looks itself up (wait_agent succeeds). The deploy is cancelled there: writing an
 * image to disk on UEFI is the UEFI deploy tests' job.
 * Needs root, iproute2, dnsmasq, qemu-system-x86, ovmf, ipxe, OpenIPMI, ipmitool: a missing one fails the test.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { jobs, machines, steps } from "../server/db/schema";
import { CONF_FILE } from "../server/netboot/tree";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { until } from "../server/testing/until";
import { ConsoleWatch } from "./console-watch";
import { startLabRackhand, stepSummary, type LabRackhand } from "./rackhand";
import { rackDown, rackUp, requireLabTools, vmRunning, type RackState } from "./rack";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-httpboot-"));
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");

let rack: RackState;
let rh: LabRackhand;

beforeAll(async () => {
  requireLabTools(["uefi"]);
  const agent = await buildAgentBundle(work);
  const tag = crypto.randomBytes(2);
  rack = await rackUp({
    dir: path.join(work, "rack"),
    prefix: `rh${tag.toString("hex").slice(0, 3)}`,
    net: `10.${100 + (tag[0]! % 40)}.${tag[1]}`,
    nodes: 1,
    firmware: "uefi",
    httpBoot: true,
    memMiB: 512,
    diskMiB: 64,
  });
  rh = await startLabRackhand({ dir: work, rack, agent, cacheDir, marker: "RACKHAND-OS-UP", adminPassword: "httpboot-test-admin-password" });
}, 600_000);

afterAll(async () => {
  await rh?.close();
  await rackDown(path.join(work, "rack"));
  if (process.env.RACKHAND_KEEP_VM_TEST !== "1") fs.rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}, 60_000);

describe("UEFI HTTP Boot (OVMF, TCG) from Rackhand, without TFTP", () => {
  it("a deploy click boots the VM over HTTP: snponly.efi from Rackhand's HTTP server → iPXE → boot.ipxe → RAM disk → agent lookup", async () => {
    const node = rack.nodes[0]!;
    const { machineId } = rh.machines[0]!;
    const port = new URL(rh.app.url).port;
    const base = `http://${rack.hostAddress}:${port}`;
    expect(vmRunning(node)).toBe(false);
    // The HTTP Boot URL is what Rackhand's dnsmasq configuration answers client architecture 16 with.
    const conf = fs.readFileSync(path.join(work, "data", "netboot", CONF_FILE), "utf8");
    expect(conf).toContain(`dhcp-option-force=tag:efihttp,60,HTTPClient`);
    expect(conf).toContain(`dhcp-boot=tag:!ipxe,tag:efihttp,${base}/boot/snponly.efi`);
    expect(conf).toContain(`dhcp-boot=tag:ipxe,${base}/boot/boot.ipxe`);

    const watch = new ConsoleWatch(node.consoleLog, {
      httpBoot: /Start HTTP Boot over IPv4/,
      uri: new RegExp(`URI: ${base.replaceAll(".", "\\.")}/boot/snponly\\.efi`),
      ipxe: /iPXE initialising devices/,
      script: /Rackhand: vm1: agent/,
      ramdisk: /rackhand-init: lease/,
    });
    const logFrom = rh.serverLog.length;
    const t0 = Date.now();
    const { jobId } = (await rh.client.machines.action.mutate({ id: machineId, action: "deploy" })) as { jobId?: number };
    expect(jobId).toBeGreaterThan(0);
    const db = rh.app.domain.db;
    try {
      const lookup = await until(
        "the agent's lookup (wait_agent done)",
        () => {
          // The lookup first: the job may end right after it (the BIOS stand-in image is refused on UEFI).
          const s = db.select().from(steps).where(and(eq(steps.jobId, jobId!), eq(steps.name, "wait_agent"))).get();
          if (s?.state === "succeeded") return Date.now();
          const job = db.select().from(jobs).where(eq(jobs.id, jobId!)).get();
          if (job && ["failed", "cancelled", "succeeded"].includes(job.state)) throw new Error(`deploy job ended ${job.state}: ${job.error}`);
          return null;
        },
        240_000,
      ).catch((err: Error) => {
        const all = db.select().from(steps).where(eq(steps.jobId, jobId!)).all();
        throw new Error(`${err.message}\n${stepSummary(all)}\n--- console:\n${watch.text().slice(-3000)}`);
      });
      const text = watch.text();
      // OVMF booted over HTTP from Rackhand's URL, then iPXE and the machine's own script.
      for (const k of ["httpBoot", "uri", "ipxe", "script", "ramdisk"]) expect(watch.seen[k], `${k} on the console:\n${text.slice(-3000)}`).toBeDefined();
      expect(text).not.toMatch(/Start PXE over IPv4/);
      const log = rh.serverLog.slice(logFrom);
      // DHCP: the HTTP Boot request (architecture 16, vendor class HTTPClient) taught Rackhand the firmware.
      expect(log.some((l) => l.includes(`boots UEFI (client architecture 16)`))).toBe(true);
      expect(log.some((l) => /vendor class: HTTPClient:Arch:00016/.test(l))).toBe(true);
      // No TFTP at all: dnsmasq logs every TFTP transfer and refusal ("dnsmasq-tftp").
      expect(log.filter((l) => /dnsmasq-tftp|TFTP/.test(l) && !l.includes("TFTP root"))).toEqual([]);
      expect(db.select().from(machines).where(eq(machines.id, machineId)).get()).toMatchObject({ bootFirmware: "uefi" });
      const at = (k: string) => `${((watch.seen[k]! - t0) / 1000).toFixed(1)} s`;
      console.log(
        `UEFI HTTP Boot, from the deploy click: HTTP Boot started ${at("httpBoot")}, snponly.efi URI ${at("uri")}, iPXE ${at("ipxe")}, ` +
          `per-MAC script ${at("script")}, RAM disk lease ${at("ramdisk")}, agent lookup done ${((lookup - t0) / 1000).toFixed(1)} s`,
      );
    } finally {
      watch.stop();
      await rh.client.jobs.cancel.mutate({ jobId: jobId! }).catch(() => undefined);
    }
  }, 360_000);
});
