import type { JobKind, StepName } from "../../lib/jobs";

/** One step of a job kind: what runs it, how long it may take, and how often a transient failure is retried. */
export interface StepSpec {
  name: StepName;
  runner: "server" | "agent";
  timeoutS: number;
  maxAttempts: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  params?: Record<string, unknown>;
  /** Only in jobs whose param of this name is set (e.g. the raid step when the profile asks for RAID). */
  when?: string;
}

const server = (name: StepName, timeoutS: number, maxAttempts: number, params?: Record<string, unknown>): StepSpec => ({
  name,
  runner: "server",
  timeoutS,
  maxAttempts,
  params,
});
const agent = (name: StepName, timeoutS: number, maxAttempts: number, params?: Record<string, unknown>): StepSpec => ({
  name,
  runner: "agent",
  timeoutS,
  maxAttempts,
  params,
});

// Booting the agent: the boot entry and the boot device are independent (parallel); then power; then the agent.
const bootAgent: StepSpec[][] = [
  [server("set_boot_target", 30, 3, { target: "agent" }), server("set_boot_device", 60, 5, { device: "pxe", persistent: false })],
  [server("power_cycle", 120, 3)],
  [server("wait_agent", 900, 1)],
];
// Leaving the agent: boot from disk next time, then restart into the installed system.
const bootDisk = (then: StepSpec): StepSpec[][] => [
  [server("set_boot_target", 30, 3, { target: "disk" }), server("set_boot_device", 60, 5, { device: "disk", persistent: true })],
  [then],
];

// A deploy's wipe first checks that the image suits the machine's firmware (UEFI: an ESP; BIOS: boot code), so an
// image the machine cannot boot fails the job before its disk is touched.
const deployWipe = agent("wipe", 1800, 2, { mode: "$wipeMode", target: "$targetDisk", imageUrl: "$imageUrl", imageFormat: "$imageFormat" });

/**
 * Job kinds are data: ordered groups of steps (steps in a group run in parallel). The orchestrator has one code
 * path for all of them. `params` of a step may name job params with `$name` (resolved when the job starts).
 */
export const JOB_KIND_SPECS: Record<JobKind, StepSpec[][]> = {
  inspect: [...bootAgent, [agent("inventory", 300, 3)], ...bootDisk(server("power_off", 120, 3))],
  clean: [...bootAgent, [agent("wipe", 1800, 2, { mode: "$wipeMode", target: "$targetDisk" })], ...bootDisk(server("power_off", 120, 3))],
  deploy_image: [
    ...bootAgent,
    [agent("inventory", 300, 3)],
    [deployWipe],
    [{ ...agent("raid", 600, 2, { spec: "$raid" }), when: "raid" }],
    [agent("write_image", 3600, 3, { url: "$imageUrl", sha256: "$imageSha256", format: "$imageFormat", target: "$imageTarget" })],
    [agent("configure_network", 300, 3, { osFamily: "$osFamily", rootPartition: "$rootPartition", files: "$networkFiles" })],
    // Once only: a script may not be safe to run twice. The step's timeout is above the script's own (≤ 3000 s).
    [{ ...agent("run_script", 3600, 1, { script: "$scriptText", interpreter: "$scriptInterpreter", timeoutS: "$scriptTimeoutS" }), when: "scriptText" }],
    ...bootDisk(server("power_cycle", 120, 3)),
  ],
  deploy_installer: [
    [server("set_boot_target", 30, 3, { target: "installer" }), server("set_boot_device", 60, 5, { device: "pxe", persistent: false })],
    [server("power_cycle", 120, 3)],
    [server("wait_install", 7200, 1)],
    ...bootDisk(server("power_cycle", 120, 3)),
  ],
  // The agent installs Debian itself (profile kind agent_install), in its Debian environment; each phase is a step.
  deploy_agent_install: [
    ...bootAgent,
    [agent("inventory", 300, 3)],
    [agent("clear_disks", 600, 2, { disk: "$targetDisk" })],
    [agent("partition", 600, 2, { disk: "$targetDisk", firmware: "$firmware", layout: "$installLayout" })],
    // Under TCG a debootstrap with a kernel takes ~30 min (two initramfs builds); real servers take minutes.
    [agent("debootstrap", 7200, 2, { suite: "$suite", mirror: "$mirror", proxy: "$proxy", packages: "$packages", initramfs: "$initramfsDrivers" })],
    [
      agent("configure_os", 600, 3, {
        hostname: "$hostname",
        domain: "$domain",
        username: "$username",
        passwordHash: "$passwordHash",
        sshKeys: "$sshKeys",
        timezone: "$timezone",
        files: "$networkFiles",
        nicNames: "$nicNames",
        kernelArgs: "$kernelArgs",
        proxy: "$proxy",
      }),
    ],
    [agent("bootloader", 3600, 2, { firmware: "$firmware", disk: "$targetDisk" })],
    ...bootDisk(server("power_cycle", 120, 3)),
  ],
  reinstall: [],
  // Bulk power as a batch: one confirmed power action (server/oob powerAction polls until the BMC reports it).
  power_on: [[server("power_on", 120, 3)]],
  power_off: [[server("power_off", 120, 3)]],
  power_cycle: [[server("power_cycle", 120, 3)]],
};
// Reinstall = clean, then deploy from the image, in one job (the agent stays up between the two).
JOB_KIND_SPECS.reinstall = [
  ...bootAgent,
  [deployWipe],
  ...JOB_KIND_SPECS.deploy_image.slice(bootAgent.length + 2),
];

/** Replace "$name" values with job params; unknown names become null. */
export function resolveParams(params: Record<string, unknown> | undefined, job: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params ?? {})) out[k] = typeof v === "string" && v.startsWith("$") ? (job[v.slice(1)] ?? null) : v;
  return out;
}
