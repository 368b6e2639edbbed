/**
 * clear_disks: make a used server's disk free for a new install, in the order the layers were stacked: swap off,
 * file systems unmounted, LVM volume groups deactivated and removed, md arrays stopped and their members'
 * superblocks zeroed, then every signature wiped (partitions, then the disk). Each action is logged.
 */
import fs from "node:fs";
import { z } from "zod";
import { permanent, transient } from "../errors";
import { run, runOk, type LogFn } from "../exec";
import type { StepHandler } from "./context";
import { resolveTarget, targetSize } from "./disk";
import { parseParams } from "./params";
import { TARGET, unmountTarget } from "./target";
import { wipeSignatures } from "./wipe";

const params = z.object({ disk: z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, "a device path under /dev").refine((d) => !d.includes(".."), "must not contain ..").nullish() });

/** No udev in the agent environment: LVM must neither wait for it nor ask it for devices. */
export const LVM_CONFIG = "devices { obtain_device_list_from_udev=0 } activation { udev_sync=0 udev_rules=0 }";

interface TreeNode {
  name: string;
  type?: string;
  mountpoints?: (string | null)[];
  mountpoint?: string | null;
  children?: TreeNode[];
}

/** Every device in the disk's lsblk tree (partitions, md arrays, LVM volumes on them) and their mount points. */
export function flattenTree(nodes: TreeNode[]): { devices: { name: string; type: string }[]; mounts: string[] } {
  const devices: { name: string; type: string }[] = [];
  const mounts: string[] = [];
  const walk = (n: TreeNode) => {
    devices.push({ name: n.name, type: n.type ?? "" });
    for (const m of [...(n.mountpoints ?? []), n.mountpoint]) if (m && !mounts.includes(m)) mounts.push(m);
    for (const c of n.children ?? []) walk(c);
  };
  nodes.forEach(walk);
  return { devices, mounts };
}

/** Arrays in /proc/mdstat (active or inactive) with a member among `names` (kernel names such as vda3). */
export function mdArraysWith(mdstat: string, names: string[]): string[] {
  const out: string[] = [];
  for (const line of mdstat.split("\n")) {
    const m = /^(md\S+)\s*:\s*\S+(.*)$/.exec(line);
    if (!m) continue;
    const members = [...m[2]!.matchAll(/(\S+?)\[\d+\]/g)].map((x) => x[1]!);
    if (members.some((x) => names.includes(x))) out.push(`/dev/${m[1]}`);
  }
  return out;
}

/** PVs (by path) and their VG from `pvs` output lines "  /dev/vda3 oldvg". */
export function parsePvs(text: string): { pv: string; vg: string }[] {
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0]?.startsWith("/dev/"))
    .map((f) => ({ pv: f[0]!, vg: f[1] ?? "" }));
}

async function tree(disk: string, signal: AbortSignal) {
  const r = await runOk("lsblk", ["--json", "--paths", "-o", "NAME,TYPE,MOUNTPOINTS", disk], { signal });
  return flattenTree((JSON.parse(r.stdout) as { blockdevices?: TreeNode[] }).blockdevices ?? []);
}

async function step(log: LogFn, signal: AbortSignal, what: string, cmd: string, args: string[], mustWork = true): Promise<boolean> {
  log(what);
  const r = await run(cmd, args, { log, signal });
  if (r.code === 0) return true;
  const why = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-2).join(" / ");
  if (mustWork) throw (/busy|in use/i.test(why) ? transient : permanent)(`${what} failed: ${why || `exit ${r.code}`}`);
  log(`${cmd} ${args.join(" ")}: exit ${r.code}${why ? ` (${why})` : ""}; going on`, "stderr");
  return false;
}

export const clearDisks: StepHandler = async ({ params: raw, log, signal, config }) => {
  const p = parseParams("clear_disks", params, raw);
  log("phase: partitioning", "phase");
  const disk = await resolveTarget(p.disk, config.targetDisk, log, signal);
  const { size, block } = targetSize(disk);
  const actions: string[] = [];
  const did = (a: string) => (actions.push(a), a);
  // A previous attempt of this job may have left the new system mounted.
  await unmountTarget(log);

  let t = await tree(disk, signal);
  const paths = new Set(t.devices.map((d) => d.name));
  log(`${disk}: ${t.devices.length - 1} device(s) below it: ${t.devices.slice(1).map((d) => `${d.name} (${d.type})`).join(", ") || "none"}`);

  // 1. Swap on the disk (a partition, an LV or an array on it).
  for (const line of fs.readFileSync("/proc/swaps", "utf8").split("\n").slice(1)) {
    const dev = line.split(/\s+/)[0];
    if (dev && (paths.has(dev) || [...paths].some((x) => fs.existsSync(dev) && fs.existsSync(x) && fs.realpathSync(dev) === fs.realpathSync(x)))) {
      await step(log, signal, did(`swapoff ${dev}`), "swapoff", [dev]);
    }
  }
  // 2. File systems, deepest mount point first.
  for (const m of [...t.mounts].sort((a, b) => b.length - a.length)) {
    if (m === "[SWAP]") continue;
    await step(log, signal, did(`umount ${m}`), "umount", [m]);
  }

  // 3. LVM: volume groups with a physical volume on the disk: deactivate, remove, then the PVs' labels.
  const pvs = await run("pvs", ["--config", LVM_CONFIG, "--noheadings", "-o", "pv_name,vg_name"], { signal });
  const ours = parsePvs(pvs.stdout).filter((x) => paths.has(x.pv));
  for (const vg of [...new Set(ours.map((x) => x.vg).filter(Boolean))]) {
    await step(log, signal, did(`vgchange -an ${vg}`), "vgchange", ["--config", LVM_CONFIG, "-an", vg], false);
    await step(log, signal, did(`vgremove -ff ${vg}`), "vgremove", ["--config", LVM_CONFIG, "-ff", "-y", vg]);
  }
  for (const { pv } of ours) await step(log, signal, did(`pvremove ${pv}`), "pvremove", ["--config", LVM_CONFIG, "-ff", "-y", pv]);
  if (!ours.length) log(`no LVM physical volume on ${disk}`);

  // 4. md arrays with a member on the disk: stop them, then zero the members' superblocks.
  t = await tree(disk, signal);
  const kernelNames = t.devices.map((d) => d.name.replace(/^\/dev\//, ""));
  const mdstat = fs.existsSync("/proc/mdstat") ? fs.readFileSync("/proc/mdstat", "utf8") : "";
  const arrays = new Set([...t.devices.filter((d) => d.type.startsWith("raid")).map((d) => d.name), ...mdArraysWith(mdstat, kernelNames)]);
  for (const md of arrays) await step(log, signal, did(`mdadm --stop ${md}`), "mdadm", ["--stop", md]);
  for (const d of t.devices.filter((x) => x.type === "part" || x.type === "disk")) {
    const ex = await run("mdadm", ["--examine", "--brief", d.name], { signal });
    if (ex.code === 0 && ex.stdout.trim()) {
      log(`${d.name} is an md member: ${ex.stdout.trim()}`);
      await step(log, signal, did(`mdadm --zero-superblock ${d.name}`), "mdadm", ["--zero-superblock", "--force", d.name]);
    }
  }
  if (!arrays.size && !actions.some((a) => a.startsWith("mdadm --zero"))) log(`no md array or member on ${disk}`);

  // 5. Signatures: every partition, then the disk (partition tables at both ends).
  log(did(`wipefs -a on the partitions of ${disk}, then on ${disk}`));
  await wipeSignatures(disk, size, block, log, signal);
  // The kernel forgets the old partitions (their nodes would otherwise linger until the new table is written).
  if (block) await run("partx", ["-d", disk], { signal });
  log(`cleared ${disk}: ${actions.length} action(s)`);
  return { disk, actions, target: TARGET };
};
