import fs from "node:fs";
import path from "node:path";

/** Every value of one key in a kernel module's .modinfo section, read from the raw file (no modinfo/objcopy needed). */
function modinfo(ko: Buffer, key: "depends" | "alias" | "firmware"): string[] {
  const out: string[] = [];
  for (const m of ko.toString("latin1").matchAll(new RegExp(`\\0${key}=([\\x21-\\x7e]*)(?=\\0)`, "g"))) out.push(m[1]!);
  return out;
}

/** The `depends=` list of a kernel module (names with "_"). */
export function moduleDepends(ko: Buffer): string[] {
  return (modinfo(ko, "depends")[0] ?? "").split(",").filter(Boolean).map((d) => d.replaceAll("-", "_"));
}

/** The `alias=` patterns of a kernel module: the hardware it drives (`pci:v00008086d000010FBsv*…`, `virtio:d00000001v*`). */
export const moduleAliases = (ko: Buffer): string[] => modinfo(ko, "alias");

/** The `firmware=` files a kernel module may request (paths under /lib/firmware). */
export const moduleFirmware = (ko: Buffer): string[] => modinfo(ko, "firmware");

/**
 * The firmware files the modules declare that exist under `firmwareDir` (a host's /lib/firmware, or an extracted
 * firmware package), as paths relative to it — as they are, or compressed (.zst, .xz: the kernel's loader tries those
 * names too, as distributions that compress their firmware ship them). A symlink is copied as the file it names,
 * wherever that is. Declared files that are missing are listed apart, and names that would leave the directory
 * (absolute, or with "..") are refused.
 */
export function firmwareFiles(
  modules: { file: string }[],
  firmwareDir: string,
  read: (p: string) => Buffer = fs.readFileSync,
): { found: { rel: string; file: string }[]; missing: string[]; refused: string[] } {
  const found: { rel: string; file: string }[] = [];
  const missing: string[] = [];
  const refused: string[] = [];
  const wanted = new Set(modules.flatMap((m) => moduleFirmware(read(m.file))));
  for (const name of [...wanted].sort()) {
    if (name.startsWith("/") || name.split("/").includes("..")) {
      refused.push(name);
      continue;
    }
    const rel = [name, `${name}.zst`, `${name}.xz`].find((r) => {
      const f = path.join(firmwareDir, r);
      return fs.existsSync(f) && fs.statSync(f).isFile();
    });
    if (rel) found.push({ rel, file: fs.realpathSync(path.join(firmwareDir, rel)) });
    else missing.push(name);
  }
  return { found, missing, refused };
}

/**
 * busybox modprobe's index of a RAM disk's modules (paths relative to lib/modules/<version>, given in load order):
 * `modules.dep` lists each module with all its dependencies, the one to load first last (as depmod writes it), and
 * `modules.alias` maps hardware patterns to module names — so modprobe with the modaliases of /sys/bus/pci/devices
 * loads the drivers of the hardware present and nothing else.
 */
export function modprobeIndex(modules: { rel: string; file: string }[], read: (p: string) => Buffer = fs.readFileSync): { dep: string; alias: string } {
  const nameOf = (rel: string) => path.basename(rel, ".ko").replaceAll("-", "_");
  const rels = new Map(modules.map((m) => [nameOf(m.rel), m.rel]));
  const info = new Map(
    modules.map((m) => {
      const ko = read(m.file);
      return [nameOf(m.rel), { depends: moduleDepends(ko), aliases: moduleAliases(ko) }];
    }),
  );
  const closure = (name: string): string[] => {
    const order: string[] = [];
    const seen = new Set<string>([name]);
    const visit = (n: string) => {
      for (const d of info.get(n)?.depends ?? []) {
        if (seen.has(d) || !rels.has(d)) continue; // built in, or not in this RAM disk (loadOrder checked)
        seen.add(d);
        visit(d);
        order.push(d);
      }
    };
    visit(name);
    return order; // load order: dependencies first
  };
  const dep = modules.map((m) => `${m.rel}:${closure(nameOf(m.rel)).reverse().map((d) => ` ${rels.get(d)}`).join("")}`);
  const alias = [...info].flatMap(([name, i]) => i.aliases.map((a) => `alias ${a} ${name}`));
  return { dep: dep.join("\n") + "\n", alias: alias.join("\n") + (alias.length ? "\n" : "") };
}

/** Index of `<name>` → path of `<name>.ko` under a kernel's lib/modules/<version>/kernel (names use "_"). */
export function indexModules(kernelDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ko")) out.set(e.name.slice(0, -3).replaceAll("-", "_"), p);
    }
  };
  walk(kernelDir);
  return out;
}

/**
 * The modules to load, dependencies first, for the wanted ones. Built-in modules (listed in modules.builtin) are
 * skipped. @throws Error naming a module that is neither a file nor built in
 */
export function loadOrder(wanted: string[], index: Map<string, string>, builtin: Set<string>, read: (p: string) => Buffer = fs.readFileSync): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string, from: string) => {
    const n = name.replaceAll("-", "_");
    if (seen.has(n)) return;
    seen.add(n);
    const file = index.get(n);
    if (!file) {
      if (builtin.has(n)) return;
      throw new Error(`kernel module ${n} (needed by ${from}) is neither a module file nor built in`);
    }
    for (const d of moduleDepends(read(file))) visit(d, n);
    order.push(n);
  };
  for (const w of wanted) visit(w, "the RAM disk");
  return order;
}

/** Names of built-in modules from a kernel's modules.builtin ("kernel/drivers/.../x.ko" per line). */
export function builtinModules(text: string): Set<string> {
  return new Set(
    text
      .split("\n")
      .map((l) => path.basename(l.trim()).replace(/\.ko$/, "").replaceAll("-", "_"))
      .filter(Boolean),
  );
}

export interface KernelModuleSet {
  /** Kernel version, from the package's boot/vmlinuz-<version>. */
  version: string;
  /** The bzImage. */
  vmlinuz: string;
  /** Module files in load order, as paths relative to lib/modules/<version>, and their absolute paths. */
  modules: { rel: string; file: string }[];
}

/**
 * The kernel of an extracted linux-image package and the module files to load for `wanted` (dependencies first,
 * built-ins skipped). Wanted names this kernel does not have at all are left out (e.g. a driver of another
 * architecture); a missing dependency of a present module throws.
 */
export function kernelModules(kernelDir: string, wanted: string[]): KernelModuleSet {
  const vmlinuz = fs.readdirSync(path.join(kernelDir, "boot")).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`no boot/vmlinuz-* in ${kernelDir}`);
  const version = vmlinuz.slice("vmlinuz-".length);
  const modRoot = path.join(kernelDir, "lib/modules", version);
  const index = indexModules(path.join(modRoot, "kernel"));
  const builtinFile = path.join(modRoot, "modules.builtin");
  const builtin = builtinModules(fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, "utf8") : "");
  const order = loadOrder(wanted.filter((m) => index.has(m) || builtin.has(m)), index, builtin);
  return {
    version,
    vmlinuz: path.join(kernelDir, "boot", vmlinuz),
    modules: order.map((m) => ({ rel: path.relative(modRoot, index.get(m)!), file: index.get(m)! })),
  };
}
