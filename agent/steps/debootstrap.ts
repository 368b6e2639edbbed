/**
 * debootstrap: Debian's base system (minbase) into /target through Rackhand's package proxy, then the kernel, the
 * boot loader package and the profile's packages with apt inside it. The kernel comes after initramfs-tools is
 * configured, so its initramfs is built once (a trigger) instead of twice — under QEMU's TCG each build is ~9 min.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { permanent, transient } from "../errors";
import { run } from "../exec";
import type { StepHandler } from "./context";
import { parseParams } from "./params";
import { chrootOk, ensureTargetMounted, TARGET, withChroot } from "./target";

const url = z
  .string()
  .max(1024)
  .regex(/^https?:\/\/[A-Za-z0-9._~:/@%+-]+$/, "an http(s) URL of letters, digits and . _ ~ : / @ % + - only");
export const packageName = z.string().max(100).regex(/^[a-z0-9][a-z0-9+.-]*$/, "a Debian package name");
export const debootstrapParams = z.object({
  suite: z.enum(["bookworm"]),
  mirror: url,
  proxy: url.nullish(),
  packages: z.array(packageName).max(200),
  /**
   * initramfs-tools MODULES: generic = most (Debian's default), targeted = dep (this machine's root only). Null from
   * a job planned before the option existed: generic.
   */
  initramfs: z
    .enum(["generic", "targeted"])
    .nullish()
    .transform((v) => v ?? "generic"),
});

/** Installed by debootstrap itself (the rest by apt, once initramfs-tools is configured). */
const FIRST = ["initramfs-tools", "apt", "ca-certificates"];
/** Packages that need initramfs-tools configured first or pull in a kernel. */
const LATER = (p: string) => p.startsWith("linux-image") || p.startsWith("grub") || p === "shim-signed";

/** Clear what a failed attempt left in /target (keeping lost+found and the ESP mount). */
function emptyTarget(): number {
  let removed = 0;
  for (const e of fs.readdirSync(TARGET)) {
    if (e === "lost+found") continue;
    if (e === "boot") {
      for (const b of fs.readdirSync(path.join(TARGET, "boot"))) {
        if (b === "efi") continue;
        fs.rmSync(path.join(TARGET, "boot", b), { recursive: true, force: true });
        removed++;
      }
      continue;
    }
    fs.rmSync(path.join(TARGET, e), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

export const debootstrap: StepHandler = async ({ params: raw, log, signal }) => {
  const p = parseParams("debootstrap", debootstrapParams, raw);
  log("phase: base system", "phase");
  await ensureTargetMounted(log, signal);
  const leftover = emptyTarget();
  if (leftover) log(`removed ${leftover} entries a previous attempt left in ${TARGET}`);
  const env = { ...process.env, ...(p.proxy ? { http_proxy: p.proxy } : {}) };
  const first = [...new Set([...FIRST, ...p.packages.filter((x) => !LATER(x))])];
  const later = p.packages.filter(LATER);
  log(`debootstrap ${p.suite} from ${p.mirror}${p.proxy ? ` through the proxy ${p.proxy}` : " (no proxy)"}: minbase + ${first.join(" ")}`);
  const t0 = Date.now();
  const r = await run("debootstrap", ["--variant=minbase", `--include=${first.join(",")}`, "--components=main", p.suite, TARGET, p.mirror], { log, signal, env });
  if (r.code !== 0) {
    // debootstrap names the package it could not get: "E: Couldn't download packages: x y" / "Failed getting release file".
    const why = (r.stderr.trim() || r.stdout.trim()).split("\n").filter((l) => /^E:|^W:|Couldn't|Failed/.test(l)).slice(-3).join(" / ") || `exit ${r.code}`;
    throw (/download|getting|Failed to|resolve|connect/i.test(why) ? transient : permanent)(`debootstrap failed: ${why}`);
  }
  log(`base system installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

  // apt in the new system reaches the mirror through the same proxy (and keeps doing so once installed).
  if (p.proxy) fs.writeFileSync(path.join(TARGET, "etc/apt/apt.conf.d/01rackhand-proxy"), `Acquire::http::Proxy "${p.proxy}";\n`);
  fs.writeFileSync(path.join(TARGET, "etc/apt/sources.list"), `deb ${p.mirror} ${p.suite} main\n`);
  if (!later.length) return { suite: p.suite, mirror: p.mirror, proxy: p.proxy ?? null, packages: first };
  // Before the kernel: its initramfs is built once, by this policy. MODULES=dep finds the root device in the chroot's
  // own /proc/mounts (its root is /target) and the drivers in /sys, both mounted by withChroot.
  const modules = p.initramfs === "targeted" ? "dep" : "most";
  fs.mkdirSync(path.join(TARGET, "etc/initramfs-tools/conf.d"), { recursive: true });
  fs.writeFileSync(path.join(TARGET, "etc/initramfs-tools/conf.d/rackhand-drivers"), `# Written by Rackhand: the OS profile's initramfs drivers (${p.initramfs}).\nMODULES=${modules}\n`);
  log(`initramfs drivers: ${p.initramfs} (MODULES=${modules})`);
  const t1 = Date.now();
  await withChroot(log, signal, async (chroot) => {
    log("phase: packages", "phase");
    await chrootOk(chroot, "apt-get", ["update"]);
    log(`apt-get install ${later.join(" ")}`);
    const inst = await chroot("apt-get", ["install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", ...later]);
    if (inst.code !== 0) {
      const why = (inst.stderr.trim() || inst.stdout.trim()).split("\n").slice(-3).join(" / ");
      throw (/Failed to fetch|Temporary failure|Could not connect|404/i.test(why) ? transient : permanent)(`apt-get install in the target failed: ${why}`);
    }
  });
  const kernels = fs.readdirSync(path.join(TARGET, "boot")).filter((f) => /^(vmlinuz|initrd\.img)-/.test(f));
  if (!kernels.some((f) => f.startsWith("vmlinuz-")) || !kernels.some((f) => f.startsWith("initrd.img-"))) {
    throw permanent(`no kernel and initramfs in ${TARGET}/boot after installing ${later.join(" ")}`);
  }
  log(`${later.join(" ")} installed in ${((Date.now() - t1) / 1000).toFixed(0)} s: ${kernels.join(", ")}`);
  return { suite: p.suite, mirror: p.mirror, proxy: p.proxy ?? null, packages: [...first, ...later], boot: kernels };
};
