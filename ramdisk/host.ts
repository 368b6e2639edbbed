import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** Run a program (argument array, no shell); return stdout. @throws Error with stderr when it fails */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, env: opts.env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd}: ${(r.error as NodeJS.ErrnoException).code === "ENOENT" ? "not installed" : r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr.trim().slice(0, 500)}`);
  return r.stdout;
}

/** Full path of a program on PATH (or the usual sbin dirs), or null. */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Shared libraries an ELF program needs (paths on this host), from ldd. */
export function sharedLibraries(elf: string): string[] {
  const out = run("ldd", [elf]);
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const arrow = /=>\s+(\/\S+)/.exec(line);
    const loader = /^\s+(\/\S+)\s+\(/.exec(line);
    if (arrow) libs.push(arrow[1]!);
    else if (loader) libs.push(loader[1]!);
  }
  return libs;
}

/**
 * Download a Debian package into `cacheDir` (once) and extract it to `<cacheDir>/<name>/` without installing it.
 * Returns the extraction directory.
 */
export function extractDeb(pkg: string, cacheDir: string): string {
  fs.mkdirSync(cacheDir, { recursive: true });
  const dest = path.join(cacheDir, pkg);
  if (fs.existsSync(path.join(dest, ".extracted"))) return dest;
  let deb = fs.readdirSync(cacheDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) {
    run("apt-get", ["download", pkg], { cwd: cacheDir });
    deb = fs.readdirSync(cacheDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${cacheDir}`);
  }
  fs.rmSync(dest, { recursive: true, force: true });
  run("dpkg", ["-x", path.join(cacheDir, deb), dest]);
  fs.writeFileSync(path.join(dest, ".extracted"), deb);
  return dest;
}

/** The versioned kernel package linux-image-amd64 points to (e.g. linux-image-6.1.0-56-amd64). */
export function currentKernelPackage(): string {
  const find = () => /Depends:\s+(linux-image-\d\S*)/.exec(spawnSync("apt-cache", ["depends", "linux-image-amd64"], { encoding: "utf8" }).stdout ?? "");
  let m = find();
  if (!m && process.getuid?.() === 0) {
    // A machine whose package lists were never fetched (or were cleaned) knows no kernel package yet.
    run("apt-get", ["update", "-qq"]);
    m = find();
  }
  if (!m) throw new Error("apt-cache depends linux-image-amd64 names no kernel package (run apt-get update first)");
  return m[1]!;
}

/**
 * This host's Node.js binary without symbols (both agent environments carry it), kept in `cacheDir` and made again
 * only when the node binary is newer than the copy.
 */
export function strippedNode(cacheDir: string): string {
  const out = path.join(cacheDir, "node.stripped");
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(process.execPath).mtimeMs) return out;
  fs.mkdirSync(cacheDir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  run("strip", ["-o", tmp, process.execPath]);
  fs.renameSync(tmp, out);
  return out;
}
