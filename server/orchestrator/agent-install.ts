/**
 * Planning an agent install (OS profile kind agent_install, job kind deploy_agent_install): the agent, booted in its
 * Debian environment, clears the used disk, partitions it for the machine's firmware, debootstraps Debian through
 * Rackhand's package proxy, writes the machine's configuration and installs the boot loader (kinds.ts has the steps).
 */
import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { installLayoutSchema, packageProxyUrl, profileOptionsSchema, type NetbootSettings } from "../../lib/netboot";
import { effectiveFirmware } from "../../lib/schemas";
import type { OsProfile } from "../db/schema";
import type { Store, StoreDb, StoreTx } from "../db/store";
import { loadNetModelIn } from "./net-model-read";
import { networkParams } from "./network-files";

/** What debootstrap installs on top of minbase, whatever the profile adds. */
export const BASE_PACKAGES = ["linux-image-amd64", "systemd-sysv", "udev", "kmod", "ifupdown", "iproute2", "openssh-server", "sudo", "ca-certificates"];
/**
 * The boot loader packages per firmware. UEFI: shim-signed (Secure Boot machines start GRUB through Microsoft's shim)
 * and grub-efi-amd64-signed, Debian's signed GRUB that `grub-install --uefi-secure-boot` places behind shim (only a
 * Recommends of shim-signed, which the agent's apt does not install).
 */
export const BOOTLOADER_PACKAGES = { bios: ["grub-pc"], uefi: ["grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"] } as const;
const DEFAULT_MIRROR = "http://deb.debian.org/debian";

/**
 * Job params of an agent install. @throws AppError VALIDATION when the agent environment is the busybox RAM disk
 * (it has no debootstrap, sgdisk, lvm2 or mdadm) or the profile's options do not parse.
 */
export async function agentInstallParams(store: Store, q: StoreDb | StoreTx, machineId: number, p: OsProfile, settings: NetbootSettings): Promise<Record<string, unknown>> {
  if (settings.agentEnvironment !== "debian") {
    throw new AppError(
      "VALIDATION",
      `OS profile ${p.name} is an agent install: it needs the Debian agent environment (debootstrap, sgdisk, lvm2, mdadm), but the netboot settings boot the busybox RAM disk. Set Settings → Netboot → agent environment to Debian, then deploy again.`,
    );
  }
  const parsed = profileOptionsSchema.safeParse(p.options ?? {});
  if (!parsed.success) throw new AppError("VALIDATION", `OS profile ${p.name}: ${parsed.error.issues[0]?.message ?? "bad options"}`);
  const o = parsed.data;
  const { machines } = store.t;
  const [m] = await q.select({ name: machines.name, firmware: machines.firmware, bootFirmware: machines.bootFirmware }).from(machines).where(eq(machines.id, machineId)).limit(1);
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  // The firmware the machine boots with: set by the operator, else learned from its DHCP requests; BIOS when unknown.
  const firmware = effectiveFirmware(m.firmware, m.bootFirmware) ?? "bios";
  // The network files are written by configure_os into the mounted target, not by configure_network.
  const net = await networkParams(store, q, machineId, { ...p, osFamily: "debian", options: { ...o, netConfig: "ifupdown", rootPartition: o.rootPartition ?? "LABEL=rh-root" } }, settings);
  // Each NIC keeps the name the operator gave it (udev would name it ens3, eno1, …): a .link file per MAC.
  const nicNames = (await loadNetModelIn(store, q, machineId, [], null)).interfaces.flatMap((i) => (i.kind === "ethernet" && i.mac ? [{ mac: i.mac, name: i.name }] : []));
  return {
    osProfileId: p.id,
    osFamily: "debian",
    firmware,
    targetDisk: o.disk ?? null,
    installLayout: o.installLayout ?? installLayoutSchema.parse({}),
    suite: o.suite,
    initramfsDrivers: o.initramfsDrivers,
    mirror: o.mirror ?? DEFAULT_MIRROR,
    proxy: packageProxyUrl(settings),
    packages: [...BASE_PACKAGES, ...BOOTLOADER_PACKAGES[firmware], ...o.packages.filter((x) => !BASE_PACKAGES.includes(x))],
    hostname: m.name,
    domain: settings.domain ?? null,
    username: o.username,
    passwordHash: o.passwordHash ?? null,
    sshKeys: o.sshKeys,
    timezone: o.timezone,
    networkFiles: net.networkFiles,
    nicNames,
    // The installed system's kernel command line: its serial console (getty and kernel messages) and the screen.
    kernelArgs: "console=tty0 console=ttyS0,115200n8",
  };
}
