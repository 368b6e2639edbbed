/**
 * What a plan says about an OS profile and a job (plan.ts): whether the profile fits the machine, which job kind a
 * deploy runs with it, and what each step of that job changes on the machine, in the operator's words.
 */
import { type JobKind } from "../../lib/jobs";
import { type OperatorAction } from "../../lib/lifecycle";
import { profileOptionsSchema } from "../../lib/netboot";
import { effectiveFirmware, type BootFirmware, type FirmwareSetting } from "../../lib/schemas";
import { type OsProfile } from "../db/schema";
import { JOB_KIND_SPECS } from "../orchestrator/kinds";

/** Failed job kinds a retry plans again from the machine's current profile (lifecycle-actions.ts retryPlan). */
export const REPLANNED_ON_RETRY: readonly JobKind[] = ["deploy_image", "deploy_installer", "deploy_agent_install", "reinstall"];
/** The firmware an OS profile's image or installer boots with (options.firmware), or null when it boots with either. */
export function profileFirmware(p: OsProfile): BootFirmware | null {
  // Parsed once per profile row: a plan asks for every machine (10,000 zod parses cost ~1 s).
  let f = firmwareOf.get(p);
  if (f === undefined) {
    const r = profileOptionsSchema.safeParse(p.options ?? {});
    f = r.success ? (r.data.firmware ?? null) : null;
    firmwareOf.set(p, f);
  }
  return f;
}
const firmwareOf = new WeakMap<OsProfile, BootFirmware | null>();

const FW = (f: BootFirmware) => (f === "uefi" ? "UEFI" : "BIOS");

/** Why `p` cannot be deployed on a machine booting with `fw` (null when it fits or either is unknown). */
export function firmwareMismatch(p: OsProfile, setting: FirmwareSetting, learned: BootFirmware | null): string | null {
  const want = profileFirmware(p);
  const have = effectiveFirmware(setting, learned);
  if (!want || !have || want === have) return null;
  return `OS profile ${p.name} boots with ${FW(want)}; the machine boots with ${FW(have)}`;
}

/** Why a profile cannot be deployed at all (null when it can). */
export function profileProblem(p: OsProfile): string | null {
  if (p.kind === "image" && !p.imageUrl) return `OS profile ${p.name} has no image URL`;
  return null;
}

/** The job kind a deploy or reinstall runs with this profile. */
export function deployKind(action: OperatorAction, p: OsProfile): JobKind {
  const k: JobKind = p.kind === "installer" ? "deploy_installer" : p.kind === "agent_install" ? "deploy_agent_install" : "deploy_image";
  return action === "reinstall" && k === "deploy_image" ? "reinstall" : k;
}

/** What each step of a job kind changes on the machine, in the operator's words (null: no visible change). */
function stepChange(name: string, params: Record<string, unknown> | undefined, p: OsProfile | null): string | null {
  switch (name) {
    case "set_boot_target":
      return params?.target === "disk"
        ? "Boot entry removed (boots from its disk)"
        : params?.target === "installer"
          ? "Boot entry for the installer written"
          : "Boot entry for the agent written";
    case "set_boot_device":
      return params?.device === "pxe" ? "BMC boot device: network (next boot)" : "BMC boot device: disk (persistent)";
    case "power_cycle":
      return "Power cycle";
    case "power_off":
      return "Power off";
    case "power_on":
      return "Power on";
    case "inventory":
      return "Inventory read";
    case "wipe":
      return "Disk signatures wiped";
    case "raid":
      return "RAID array created";
    case "write_image":
      return `Image written${p?.imageUrl ? `: ${p.imageUrl.slice(p.imageUrl.lastIndexOf("/") + 1)}` : ""}`;
    case "configure_network":
      return "Network configuration written";
    case "run_script":
      return "Post-install script run";
    case "wait_install":
      return `Installer installs ${p?.name ?? "the OS"}`;
    case "clear_disks":
      return "Disks cleared (RAID, LVM, partitions)";
    case "partition":
      return "Disk partitioned";
    case "debootstrap":
      return `Debian installed by the agent${p?.name ? `: ${p.name}` : ""}`;
    case "configure_os":
      return "System configured (network, user, SSH keys)";
    case "bootloader":
      return "Boot loader installed";
    default:
      return null;
  }
}

/** The changes of a job kind (steps in order, the conditional ones only when the profile asks for them). */
export function jobChanges(kind: JobKind, p: OsProfile | null): string[] {
  const opts = p ? profileOptionsSchema.safeParse(p.options ?? {}) : null;
  const when: Record<string, boolean> = { raid: Boolean(opts?.success && opts.data.raid), scriptText: Boolean(opts?.success && opts.data.postInstallScript) };
  const out: string[] = [];
  for (const group of JOB_KIND_SPECS[kind]) {
    for (const s of group) {
      if (s.when && !when[s.when]) continue;
      const c = stepChange(s.name, s.params, p);
      if (c && !out.includes(c)) out.push(c);
    }
  }
  return out;
}
