import fs from "node:fs";
import { z } from "zod";
import { permanent } from "../errors";
import { runOk, type LogFn } from "../exec";

export const lsblkDevice = z.object({
  name: z.string(),
  path: z.string().nullish(),
  size: z.union([z.number(), z.string()]).nullish(),
  type: z.string().nullish(),
  rm: z.union([z.boolean(), z.string(), z.number()]).nullish(),
  ro: z.union([z.boolean(), z.string(), z.number()]).nullish(),
  model: z.string().nullish(),
  serial: z.string().nullish(),
  rota: z.union([z.boolean(), z.string(), z.number()]).nullish(),
  tran: z.string().nullish(),
});
const lsblkOutput = z.object({ blockdevices: z.array(lsblkDevice) });
export type LsblkDevice = z.infer<typeof lsblkDevice>;

// lsblk prints booleans as true/false in new versions and "0"/"1" in old ones.
const flag = (v: unknown) => v === true || v === 1 || v === "1";

/** Whole disks as lsblk sees them (sizes in bytes). */
export async function listDisks(signal?: AbortSignal): Promise<LsblkDevice[]> {
  const r = await runOk("lsblk", ["--json", "-b", "--nodeps", "-o", "NAME,PATH,SIZE,TYPE,RM,RO,MODEL,SERIAL,ROTA,TRAN"], { signal });
  const parsed = lsblkOutput.safeParse(JSON.parse(r.stdout));
  if (!parsed.success) throw permanent(`lsblk: unexpected output: ${parsed.error.issues[0]?.message}`);
  return parsed.data.blockdevices.filter((d) => d.type === "disk");
}

/** The size of a block device or a regular file (bytes). @throws StepFailure (permanent) when it is missing */
export function targetSize(target: string): { size: number; block: boolean } {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch {
    throw permanent(`target ${target} does not exist`);
  }
  if (st.isFile()) return { size: st.size, block: false };
  if (!st.isBlockDevice()) throw permanent(`target ${target} is neither a block device nor a file`);
  // stat reports size 0 for a block device; sysfs knows it.
  return { size: blockDeviceSize(target), block: true };
}

function blockDeviceSize(target: string): number {
  const name = fs.realpathSync(target).replace(/^\/dev\//, "");
  try {
    return Number(fs.readFileSync(`/sys/class/block/${name}/size`, "utf8").trim()) * 512; // always 512-byte sectors
  } catch {
    throw permanent(`cannot read the size of ${target}`);
  }
}

/**
 * The disk a step works on: the step's own param, else the agent's --target-disk, else the first whole disk
 * that is neither removable nor read-only. @throws StepFailure (permanent) when there is none
 */
export async function resolveTarget(explicit: string | null | undefined, fallback: string | null, log: LogFn, signal?: AbortSignal): Promise<string> {
  const chosen = explicit || fallback;
  if (chosen) {
    targetSize(chosen);
    return chosen;
  }
  const disks = (await listDisks(signal)).filter((d) => !flag(d.rm) && !flag(d.ro) && Number(d.size) > 0 && !/^(loop|zram|ram|sr)/.test(d.name));
  const first = disks[0];
  if (!first) throw permanent("no target disk: no fixed, writable disk found");
  const p = first.path ?? `/dev/${first.name}`;
  log(`target disk: ${p} (${first.model ?? "unknown model"}, ${Number(first.size)} bytes), the first fixed disk`);
  return p;
}
