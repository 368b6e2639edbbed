/**
 * The installed system's file systems while the agent installs it (agent install steps): found by the labels the
 * partition step gives them, mounted at /target (ESP at /target/boot/efi), and the chroot the later steps run in.
 */
import fs from "node:fs";
import path from "node:path";
import { permanent } from "../errors";
import { run, runOk, type LogFn, type RunResult } from "../exec";

export const TARGET = "/target";
export const LABELS = { root: "rh-root", swap: "rh-swap", esp: "RH-ESP" } as const;

/** /dev/vda + 2 → /dev/vda2; /dev/nvme0n1 + 2 → /dev/nvme0n1p2 (a name ending in a digit takes a p). */
export function partitionPath(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

/** The device carrying the file system labelled `label` (blkid), or null. */
export async function byLabel(label: string, signal?: AbortSignal): Promise<string | null> {
  const r = await run("blkid", ["-c", "/dev/null", "-l", "-o", "device", "-t", `LABEL=${label}`], { signal });
  return r.code === 0 ? r.stdout.trim().split("\n")[0] || null : null;
}

/** The file system UUID of a device (blkid). @throws StepFailure (permanent) when it has none */
export async function uuidOf(dev: string, signal?: AbortSignal): Promise<string> {
  const r = await run("blkid", ["-c", "/dev/null", "-s", "UUID", "-o", "value", dev], { signal });
  const uuid = r.stdout.trim();
  if (r.code !== 0 || !/^[0-9A-Fa-f-]{4,36}$/.test(uuid)) throw permanent(`no file system UUID on ${dev}`);
  return uuid;
}

function mountedAt(dir: string): boolean {
  return fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === dir);
}

/** Mount the target's root (and ESP when there is one) unless already mounted. @throws StepFailure (permanent) */
export async function ensureTargetMounted(log: LogFn, signal: AbortSignal): Promise<void> {
  if (!mountedAt(TARGET)) {
    const root = await byLabel(LABELS.root, signal);
    if (!root) throw permanent(`no file system labelled ${LABELS.root}: the partition step has not run on this disk`);
    fs.mkdirSync(TARGET, { recursive: true });
    await runOk("mount", [root, TARGET], { log, signal });
    log(`mounted ${root} on ${TARGET}`);
  }
  const esp = await byLabel(LABELS.esp, signal);
  const espDir = path.join(TARGET, "boot/efi");
  if (esp && !mountedAt(espDir)) {
    fs.mkdirSync(espDir, { recursive: true });
    await runOk("mount", [esp, espDir], { log, signal });
    log(`mounted ${esp} on ${espDir}`);
  }
}

/** Unmount everything below and at /target (deepest first). */
export async function unmountTarget(log: LogFn): Promise<void> {
  if (!mountedAt(TARGET)) return;
  await run("sync", []);
  const r = await run("umount", ["-R", TARGET]);
  if (r.code !== 0) log(`umount -R ${TARGET}: ${r.stderr.trim()}`, "stderr");
  else log(`unmounted ${TARGET}`);
}

const CHROOT_ENV = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: "/root",
  LANG: "C.UTF-8",
  LC_ALL: "C.UTF-8",
  DEBIAN_FRONTEND: "noninteractive",
  DEBCONF_NONINTERACTIVE_SEEN: "true",
};

/**
 * Run `fn` with /dev, /dev/pts, /proc and /sys mounted in the target (and /dev/disk/by-uuid links, which grub-mkconfig
 * needs for root=UUID=… where no udev runs), services kept from starting (policy-rc.d); all undone afterwards.
 */
export async function withChroot<T>(log: LogFn, signal: AbortSignal, fn: (chroot: (cmd: string, args: string[], extraEnv?: Record<string, string>) => Promise<RunResult>) => Promise<T>): Promise<T> {
  const mounts: string[] = [];
  const policy = path.join(TARGET, "usr/sbin/policy-rc.d");
  try {
    for (const [src, rel, type] of [
      ["/dev", "dev", "bind"],
      ["/dev/pts", "dev/pts", "bind"],
      ["proc", "proc", "proc"],
      ["/sys", "sys", "bind"],
    ] as const) {
      const dir = path.join(TARGET, rel);
      fs.mkdirSync(dir, { recursive: true });
      await runOk("mount", type === "bind" ? ["--bind", src, dir] : ["-t", type, src, dir], { signal });
      mounts.push(dir);
    }
    await linkByUuid(signal);
    fs.mkdirSync(path.dirname(policy), { recursive: true });
    fs.writeFileSync(policy, "#!/bin/sh\n# Rackhand: no services start while the agent installs this system.\nexit 101\n", { mode: 0o755 });
    return await fn((cmd, args, extraEnv) => run("chroot", [TARGET, cmd, ...args], { log, signal, env: { ...process.env, ...CHROOT_ENV, ...extraEnv } }));
  } finally {
    fs.rmSync(policy, { force: true });
    for (const dir of mounts.reverse()) {
      const r = await run("umount", ["-l", dir]);
      if (r.code !== 0) log(`umount ${dir}: ${r.stderr.trim()}`, "stderr");
    }
  }
}

/** /dev/disk/by-uuid/<uuid> → ../../<dev> for every file system blkid sees (the agent environment has no udev). */
async function linkByUuid(signal: AbortSignal): Promise<void> {
  const r = await run("blkid", ["-c", "/dev/null", "-o", "export"], { signal });
  const dir = "/dev/disk/by-uuid";
  fs.mkdirSync(dir, { recursive: true });
  for (const block of r.stdout.split(/\n\s*\n/)) {
    const dev = /^DEVNAME=(\S+)$/m.exec(block)?.[1];
    const uuid = /^UUID=([0-9A-Fa-f-]+)$/m.exec(block)?.[1];
    if (!dev || !uuid) continue;
    const link = path.join(dir, uuid);
    fs.rmSync(link, { force: true });
    fs.symlinkSync(path.relative(dir, dev), link);
  }
}

/** Run in the target and require exit 0. @throws StepFailure */
export async function chrootOk(chroot: (cmd: string, args: string[], env?: Record<string, string>) => Promise<RunResult>, cmd: string, args: string[], env?: Record<string, string>): Promise<RunResult> {
  const r = await chroot(cmd, args, env);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-3).join(" / ") || `exit code ${r.code}`;
    throw permanent(`${cmd} ${args[0] ?? ""} in the target failed: ${why}`);
  }
  return r;
}
