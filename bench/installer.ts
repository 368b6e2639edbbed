/**
 * npm run bench:installer — an agent install (profile "Debian (agent install)") on a QEMU VM (TCG), from the click
 * to the installed system's login prompt on its serial console, with a cold package proxy cache (a fresh data
 * directory: the managed apt-cacher-ng starts empty) and then a warm one (Reinstall), per phase (each agent step),
 * with the bytes the proxy fetched upstream and served. A benchmark, not a test: results go to docs/BENCHMARKS.md
 * (section "installer"). One run of each takes ~40 min under TCG on 2 cores.
 *
 * The d-i half (time to each phase d-i reaches on this mirror) comes from bench/installer-di.ts (`diRounds()`,
 * written with the d-i VM test); see the HOOK below. Environment: BENCH_INSTALLER_KEEP=1 keeps the state directory.
 * Needs root and the lab's tools plus apt-cacher-ng and debootstrap (scripts/install-system-deps.sh test).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AGENT_INSTALL_PROFILE, formatRun, runAgentInstall, type InstallRun } from "../lab/agent-install";
import { startLabRackhand } from "../lab/rackhand";
import { rackDown, rackUp, requireLabTools } from "../lab/rack";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { machineInfo } from "./lib/report";
import { diRounds, diTable } from "./installer-di";
import { writeSection } from "./lib/sections";

const STATE = path.join(os.tmpdir(), "rackhand-bench-installer");
// --firmware bios|uefi|secureboot: the VM's firmware (default bios); the agent installs the matching boot loader.
const FIRMWARE = ((): "bios" | "uefi" | "secureboot" => {
  const i = process.argv.indexOf("--firmware");
  const v = i >= 0 ? process.argv[i + 1] : "bios";
  if (v !== "bios" && v !== "uefi" && v !== "secureboot") throw new Error(`--firmware takes bios, uefi or secureboot, not ${JSON.stringify(v)}`);
  return v;
})();
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");
const MIN = 60_000;
const HERE = path.dirname(new URL(import.meta.url).pathname);

const s = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(0)} s`);
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

function renderSection(runs: { label: string; r: InstallRun }[], di: string | null, startedAt: Date): string {
  const m = machineInfo();
  const names = [...new Set(runs.flatMap((x) => x.r.steps.map((st) => st.name)))];
  const step = (r: InstallRun, n: string) => s(r.steps.filter((x) => x.name === n).reduce<number | null>((a, x) => (x.ms === null ? a : (a ?? 0) + x.ms), null));
  return [
    "## Agent install on a QEMU VM (npm run bench:installer)",
    "",
    `${startedAt.toISOString().slice(0, 10)}, ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os}, Node ${m.node}; QEMU TCG (no KVM), 1 vCPU, 1536 MiB, 4 GiB disk, ${FIRMWARE === "bios" ? "BIOS (SeaBIOS)" : FIRMWARE === "uefi" ? "UEFI (OVMF)" : "UEFI with Secure Boot (OVMF, Microsoft keys enrolled)"}.`,
    `Profile "Debian (agent install)": swap 256 MiB, root = rest; Debian 12 minbase + kernel + ${FIRMWARE === "bios" ? "grub-pc" : "shim-signed + grub-efi-amd64-signed"} + openssh-server + ifupdown + sudo through the managed apt-cacher-ng; initramfs drivers targeted (MODULES=dep).`,
    "Cold: fresh data directory (empty proxy cache), Deploy. Warm: Reinstall right after (same cache).",
    "",
    `| phase | ${runs.map((x) => x.label).join(" | ")} |`,
    `| --- | ${runs.map(() => "---:").join(" | ")} |`,
    ...names.map((n) => `| ${n} | ${runs.map((x) => step(x.r, n)).join(" | ")} |`),
    `| click → job succeeded | ${runs.map((x) => s(x.r.clickToDone)).join(" | ")} |`,
    `| **click → login prompt** | ${runs.map((x) => `**${s(x.r.clickToLogin)}**`).join(" | ")} |`,
    `| click → SSH answers | ${runs.map((x) => s(x.r.clickToSsh)).join(" | ")} |`,
    `| proxy: fetched upstream | ${runs.map((x) => mb(x.r.proxy.upstreamBytes)).join(" | ")} |`,
    `| proxy: served to the VM | ${runs.map((x) => mb(x.r.proxy.clientBytes)).join(" | ")} |`,
    `| proxy: upstream errors | ${runs.map((x) => String(x.r.proxy.errors)).join(" | ")} |`,
    "",
    di ?? "d-i (debian-installer) phases: not measured here (bench/installer-di.ts was not present).",
  ].join("\n");
}

async function main(): Promise<void> {
  requireLabTools([FIRMWARE]);
  const startedAt = new Date();
  await rackDown(path.join(STATE, "rack")); // what a killed run left
  fs.rmSync(STATE, { recursive: true, force: true });
  fs.mkdirSync(STATE, { recursive: true });
  const agent = await buildAgentBundle(STATE);
  const rack = await rackUp({ dir: path.join(STATE, "rack"), prefix: "rbi", net: "10.197.0", nodes: 1, memMiB: 1536, diskMiB: 4096, firmware: FIRMWARE });
  const rh = await startLabRackhand({ dir: STATE, rack, agent, cacheDir, marker: "RACKHAND-OS-UP", adminPassword: "bench-installer-admin-password", debian: true }).catch(async (err) => {
    await rackDown(path.join(STATE, "rack"));
    throw err;
  });
  const stop = async () => {
    await rh.close();
    await rackDown(path.join(STATE, "rack"));
    if (process.env.BENCH_INSTALLER_KEEP !== "1") fs.rmSync(STATE, { recursive: true, force: true });
  };
  process.once("SIGINT", () => void stop().then(() => process.exit(130)));
  process.once("SIGTERM", () => void stop().then(() => process.exit(143)));
  const runs: { label: string; r: InstallRun }[] = [];
  try {
    const { app, client } = rh;
    const machineId = rh.machines[0]!.machineId;
    const node = rack.nodes[0]!;
    await client.netboot.saveSettings.mutate({ ...(await client.netboot.settings.query()), agentEnvironment: "debian", proxyMode: "managed", proxyPort: 20000 + crypto.randomInt(12000) });
    const profile = await client.osProfiles.create.mutate(AGENT_INSTALL_PROFILE);
    await client.machines.update.mutate({ id: machineId, osProfileId: profile.id });
    for (const [label, action] of [["cold cache (Deploy)", "deploy"], ["warm cache (Reinstall)", "reinstall"]] as const) {
      const r = await runAgentInstall({ app, client, machineId, node, hostname: node.name, jobTimeoutMs: 110 * MIN, bootTimeoutMs: 10 * MIN, action });
      console.log(formatRun(label, r));
      if (r.state !== "succeeded") throw new Error(`${label}: job ${r.jobId} ${r.state}: ${r.error}`);
      runs.push({ label, r });
    }
  } finally {
    await stop();
  }

  // The d-i half: time to each phase debian-installer reaches through Rackhand on this mirror (bench/installer-di.ts).
  const di = `d-i (debian-installer) phases (bench/installer-di.ts):\n\n${diTable(await diRounds())}`;
  writeSection(path.join(HERE, "..", "docs", "BENCHMARKS.md"), "installer", renderSection(runs, di, startedAt));
  console.log("wrote docs/BENCHMARKS.md (section installer)");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
