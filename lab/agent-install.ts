/**
 * Agent installs on a virtual machine (profile kind agent_install), shared by `npm run test:installer` and
 * `npm run bench:installer`: the used-disk preparation (a script run by the Debian agent environment after an image
 * deploy: DOS partition table, ext4, swap, an LVM volume group, an md RAID 1 member), the agent-install profile,
 * one install through tRPC as the UI does it (Reinstall), timed per step, and the package proxy's byte counters.
 */
import net from "node:net";
import { asc, eq } from "drizzle-orm";
import type { App } from "../server/app";
import { logLines, machines } from "../server/db/schema";
import type { RackhandClient } from "./client";
import { ConsoleWatch } from "./console-watch";
import { waitForJob } from "./rackhand";
import type { VirtualNode } from "./rack";

/** Runs in the Debian agent environment (bash, sfdisk, lvm2, mdadm); leaves the disk as a used server's. */
export const USED_DISK_SCRIPT = `set -eu
D=/dev/vda
LVM='devices { obtain_device_list_from_udev=0 } activation { udev_sync=0 udev_rules=0 }'
wipefs -a -f $D >/dev/null
printf 'label: dos\\n,300M,83\\n,200M,82\\n,600M,8e\\n,600M,fd\\n' | sfdisk -q $D
partx -u $D || true
for i in 1 2 3 4; do n=0; while [ ! -b $D$i ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done; done
mkfs.ext4 -q -F -L oldroot \${D}1
mkdir -p /mnt/old && mount \${D}1 /mnt/old && echo old >/mnt/old/old-file && umount /mnt/old
mkswap -L oldswap \${D}2 >/dev/null
pvcreate -ff -y --config "$LVM" \${D}3
vgcreate --config "$LVM" oldvg \${D}3
lvcreate --config "$LVM" -y -L 256M -n data oldvg && mkfs.ext4 -q -F -L olddata /dev/oldvg/data && vgchange --config "$LVM" -an oldvg
mdadm --create /dev/md/old --run --level=1 --raid-devices=2 --metadata=1.2 --homehost=any \${D}4 missing
mkfs.ext4 -q -F -L oldmd /dev/md/old
mdadm --stop /dev/md/old
sync
for p in 1 2 3 4; do echo "used-disk: \${D}$p $(blkid -o value -s TYPE \${D}$p)"; done
echo "used-disk: LVM $(pvs --config "$LVM" --noheadings -o pv_name,vg_name 2>/dev/null | xargs)"
echo "used-disk: md $(mdadm --examine --brief \${D}4 | head -c 120)"
`;

/** A public key for the installed user (the test only checks it lands in authorized_keys; no login is made). */
export const TEST_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1zZ8pQk0b7oQ8mW1H3GQ1gOq4l6z4o2x0qYw7h3vCk rackhand-installer-test";

export const AGENT_INSTALL_PROFILE = {
  name: "Debian 12 (agent install)",
  kind: "agent_install" as const,
  osFamily: "debian" as const,
  // Targeted initramfs drivers (MODULES=dep): under TCG the generic initramfs (MODULES=most) alone took 14 min of a
  // 95-min install (docs/BENCHMARKS.md, 2026-12-06); that run is the proof of the generic path.
  options: { username: "ops", sshKeys: [TEST_SSH_KEY], installLayout: { espMiB: 512, swapMiB: 256 }, initramfsDrivers: "targeted" as const },
};

export interface ProxyFigures {
  upstreamBytes: number;
  clientBytes: number;
  errors: number;
}

/** The package proxy's counters from /metrics (Prometheus text). */
export async function proxyFigures(appUrl: string): Promise<ProxyFigures> {
  const text = await (await fetch(new URL("/metrics", appUrl))).text();
  // Lines carry the registry's default labels: rackhand_package_proxy_upstream_bytes{app="rackhand"} 141879459
  const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  const f = { upstreamBytes: v("rackhand_package_proxy_upstream_bytes"), clientBytes: v("rackhand_package_proxy_client_bytes"), errors: v("rackhand_package_proxy_upstream_errors") };
  if (Object.values(f).some(Number.isNaN)) throw new Error(`the package proxy's counters are not in /metrics (is the managed proxy running?):\n${text.slice(0, 500)}`);
  return f;
}

/** Resolves with the first bytes the port sends (an SSH server's banner) or rejects. */
export function tcpBanner(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`))), timeoutMs);
    s.once("data", (d) => (clearTimeout(timer), s.destroy(), resolve(d.toString("latin1").trim())));
    s.once("error", (e) => (clearTimeout(timer), reject(e)));
  });
}

export interface InstallRun {
  jobId: number;
  state: string;
  error: string | null;
  /** Each step's name and duration (ms), in order. */
  steps: { name: string; state: string; ms: number | null; result: unknown; error: string | null }[];
  clickToDone: number;
  clickToLogin: number | null;
  clickToSsh: number | null;
  sshBanner: string | null;
  proxy: ProxyFigures;
  logLines: number;
  console: string;
}

/**
 * Reinstall (or deploy) the machine with its current profile, as the UI's button does, wait for the job, then for the installed
 * system's login prompt on the serial console and its SSH port on the static address.
 */
export async function runAgentInstall(o: {
  app: App;
  client: RackhandClient;
  machineId: number;
  node: VirtualNode;
  hostname: string;
  jobTimeoutMs: number;
  bootTimeoutMs: number;
  /** The UI's button: Deploy (an available machine) or Reinstall (a deployed one, the default). */
  action?: "deploy" | "reinstall";
}): Promise<InstallRun> {
  const before = await proxyFigures(o.app.url);
  const watch = new ConsoleWatch(o.node.consoleLog, { login: new RegExp(`${o.hostname} login:`) });
  const t0 = Date.now();
  const { jobId } = (await o.client.machines.action.mutate({ id: o.machineId, action: o.action ?? "reinstall" })) as { jobId?: number };
  if (!jobId) throw new Error(`${o.action ?? "reinstall"} started no job`);
  const { job, steps } = await waitForJob(o.app, jobId, o.jobTimeoutMs);
  const clickToDone = Date.now() - t0;
  let clickToLogin: number | null = null;
  let clickToSsh: number | null = null;
  let sshBanner: string | null = null;
  if (job.state === "succeeded") {
    clickToLogin = (await watch.waitFor("login", o.bootTimeoutMs)) - t0;
    for (const deadline = Date.now() + 120_000; !sshBanner; ) {
      try {
        sshBanner = await tcpBanner(o.node.ip, 22, 5000);
        clickToSsh = Date.now() - t0;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the installed system's SSH port ${o.node.ip}:22 did not answer: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
  const after = await proxyFigures(o.app.url);
  const lines = o.app.domain.db.select().from(logLines).where(eq(logLines.jobId, jobId)).orderBy(asc(logLines.seq)).all();
  watch.stop();
  return {
    jobId,
    state: job.state,
    error: job.error,
    steps: steps.map((s) => ({ name: s.name, state: s.state, ms: s.startedAt && s.finishedAt ? s.finishedAt.getTime() - s.startedAt.getTime() : null, result: s.result, error: s.error })),
    clickToDone,
    clickToLogin,
    clickToSsh,
    sshBanner,
    proxy: { upstreamBytes: after.upstreamBytes - before.upstreamBytes, clientBytes: after.clientBytes - before.clientBytes, errors: after.errors - before.errors },
    logLines: lines.length,
    console: watch.text(),
  };
}

export function machineState(app: App, id: number): string {
  return app.domain.db.select().from(machines).where(eq(machines.id, id)).get()!.state;
}

/** A table of the run's phases (seconds). */
export function formatRun(label: string, r: InstallRun): string {
  const s = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(1)} s`);
  return [
    `${label}: job ${r.jobId} ${r.state}; click → job done ${s(r.clickToDone)}, → login prompt ${s(r.clickToLogin)}, → SSH ${s(r.clickToSsh)}`,
    ...r.steps.map((x) => `  ${x.name.padEnd(16)} ${x.state.padEnd(10)} ${s(x.ms)}`),
    `  proxy: ${(r.proxy.upstreamBytes / 1e6).toFixed(1)} MB from upstream, ${(r.proxy.clientBytes / 1e6).toFixed(1)} MB served, ${r.proxy.errors} upstream errors; ${r.logLines} log lines`,
  ].join("\n");
}
