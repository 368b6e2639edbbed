import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { permanent } from "../errors";
import { run, runOk } from "../exec";
import type { StepContext, StepHandler } from "./context";
import { parseParams } from "./params";

export const fileSpec = z.object({
  path: z
    .string()
    .startsWith("/", "must be absolute in the installed system")
    .max(512)
    .refine((p) => !p.split("/").includes(".."), "must not contain .."),
  content: z.string().max(1 << 20),
  mode: z.number().int().min(0).max(0o7777).default(0o644),
});
export const configureNetworkParams = z.object({
  osFamily: z.string().nullish(),
  /**
   * The installed system's root file system: a block device (mounted here), LABEL=… or UUID=… of its file system
   * (found with blkid: the partition's name depends on the disk, e.g. /dev/md127p2 on RAID), or a mounted directory.
   */
  rootPartition: z.string().regex(/^(\/\S+|LABEL=[A-Za-z0-9_.-]{1,64}|UUID=[0-9A-Fa-f-]{4,36})$/, "a path, LABEL=… or UUID=…").nullish(),
  files: z.array(fileSpec).max(64).nullish(),
});

/** Write a file under `root` so a crash leaves either the old or the new content (temp file, fsync, rename). */
export function writeAtomic(root: string, rel: string, content: string, mode: number): string {
  const dest = path.join(root, rel);
  // path.join normalises; a path that climbs out of the root is refused by the schema, checked again here.
  if (!dest.startsWith(path.join(root, "/"))) throw permanent(`configure_network: ${rel} is outside the installed root`);
  fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.rackhand-tmp`);
  const fd = fs.openSync(tmp, "w", mode);
  try {
    fs.writeSync(fd, content);
    fs.fchmodSync(fd, mode); // umask must not narrow what the OS expects (e.g. 0600 keyfiles stay 0600, 0644 stays 0644)
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, dest);
  return dest;
}

/** LABEL=x / UUID=x → the block device carrying that file system (blkid); a path stays as it is. */
async function resolveRoot(ctx: StepContext, spec: string): Promise<string> {
  if (spec.startsWith("/")) return spec;
  const r = await run("blkid", ["-l", "-o", "device", "-t", spec], { signal: ctx.signal });
  const dev = r.stdout.trim().split("\n")[0];
  if (r.code !== 0 || !dev) throw permanent(`configure_network: no file system with ${spec} (blkid found none)`);
  ctx.log(`root file system ${spec} is ${dev}`);
  return dev;
}

async function withRoot<T>(ctx: StepContext, spec: string, fn: (root: string) => T): Promise<T> {
  const rootPartition = await resolveRoot(ctx, spec);
  let st: fs.Stats;
  try {
    st = fs.statSync(rootPartition);
  } catch {
    throw permanent(`configure_network: root partition ${rootPartition} does not exist`);
  }
  if (st.isDirectory()) return fn(rootPartition);
  if (!st.isBlockDevice()) throw permanent(`configure_network: ${rootPartition} is neither a block device nor a directory`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-root-"));
  try {
    await runOk("mount", [rootPartition, dir], { log: ctx.log, signal: ctx.signal });
    try {
      return fn(dir);
    } finally {
      const u = await run("umount", [dir]);
      if (u.code !== 0) ctx.log(`umount ${dir} failed: ${u.stderr.trim()}`, "stderr");
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Write the installed system's network configuration (rendered by the server for the OS family) into its root
 * file system. Without files there is nothing to do: the image keeps its own configuration (usually DHCP).
 */
export const configureNetwork: StepHandler = async (ctx) => {
  const p = parseParams("configure_network", configureNetworkParams, ctx.params);
  const files = p.files ?? [];
  if (!files.length) {
    ctx.log("no network files for this machine: the image keeps its own network configuration");
    return { skipped: "no network files for this machine" };
  }
  if (!p.rootPartition) throw permanent("configure_network: files given but no rootPartition to write them to");
  const written = await withRoot(ctx, p.rootPartition, (root) =>
    files.map((f) => {
      writeAtomic(root, f.path, f.content, f.mode);
      // Paths only: the content may hold secrets (Wi-Fi keys, 802.1X passwords).
      ctx.log(`wrote ${f.path} (${Buffer.byteLength(f.content)} bytes, mode ${f.mode.toString(8)})`);
      return f.path;
    }),
  );
  return { osFamily: p.osFamily ?? null, written };
};
