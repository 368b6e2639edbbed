import fs from "node:fs";
import { z } from "zod";
import { permanent } from "../errors";
import { run, runOk } from "../exec";
import type { StepHandler } from "./context";
import { parseParams } from "./params";

/** A software RAID spec: mdadm level, member devices, array name (becomes /dev/md/<name>). */
export const raidSpec = z
  .object({
    level: z.union([z.literal(0), z.literal(1), z.literal(10)]),
    devices: z
      .array(z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, "must be a device path under /dev").refine((d) => !d.includes(".."), "must not contain .."))
      .min(2, "at least two devices")
      .max(64),
    name: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, "letters, digits, _ and - only (1-32)"),
    metadata: z.enum(["1.0", "1.2"]).default("1.2"),
  })
  .refine((s) => new Set(s.devices).size === s.devices.length, { message: "devices must be distinct", path: ["devices"] });
export type RaidSpec = z.infer<typeof raidSpec>;

const raidParams = z.object({ spec: raidSpec });

/** mdadm --create arguments for a spec (an argument array, never a shell string). */
export function mdadmCreateArgs(s: RaidSpec): string[] {
  return [
    "--create",
    `/dev/md/${s.name}`,
    "--run", // no "Continue creating array?" prompt
    `--level=${s.level}`,
    `--raid-devices=${s.devices.length}`,
    `--metadata=${s.metadata}`,
    "--homehost=any",
    ...s.devices,
  ];
}

/**
 * Create a software RAID array with mdadm from a validated spec. Idempotent: when /dev/md/<name> already exists
 * with the spec's level it is taken as done (a retry after a lost report).
 */
export const raid: StepHandler = async ({ params, log, signal }) => {
  const { spec } = parseParams("raid", raidParams, params);
  for (const d of spec.devices) if (!fs.existsSync(d)) throw permanent(`raid: device ${d} does not exist`);
  const md = `/dev/md/${spec.name}`;
  if (fs.existsSync(md)) {
    const detail = await run("mdadm", ["--detail", "--export", md], { signal });
    if (detail.code === 0 && detail.stdout.includes(`MD_LEVEL=raid${spec.level}`)) {
      log(`${md} already exists as raid${spec.level}: nothing to do`);
      return { device: md, level: spec.level, devices: spec.devices, existing: true };
    }
    throw permanent(`raid: ${md} exists with another layout; wipe the members first`);
  }
  // Old superblocks on the members would make mdadm ask (or assemble the old array).
  for (const d of spec.devices) await run("mdadm", ["--zero-superblock", "--force", d], { signal });
  await runOk("mdadm", mdadmCreateArgs(spec), { log, signal });
  log(`created ${md}: raid${spec.level} over ${spec.devices.join(", ")}`);
  return { device: md, level: spec.level, devices: spec.devices, existing: false };
};
