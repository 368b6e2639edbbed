/**
 * Netboot values that end up in files, config lines, paths or kernel command lines (DESIGN §6).
 * Every such value crosses one of these schemas before anything is written: a newline in a kernel argument
 * would add a pxelinux/GRUB/iPXE directive, a quote would end a GRUB string, `../` would leave the tree.
 * Isomorphic (used by the settings and profile forms too).
 */
import { BUSY_STATES } from "./lifecycle";
import { z } from "zod";
import { isHostname, isIPv4 } from "./net";

export const NETBOOT_MODES = ["managed", "external", "off"] as const;

/** The agent RAM disk's payload in <http>/ramdisk/ (ramdisk/builder.ts), fetched by the RAM disk's /init. */
export const AGENT_PAYLOAD_FILE = "agent.cpio.zst";
export type NetbootMode = (typeof NETBOOT_MODES)[number];
export const PROXY_MODES = ["managed", "external", "off"] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];
export const PROFILE_KINDS = ["image", "installer", "agent_install"] as const;
export type ProfileKind = (typeof PROFILE_KINDS)[number];
/** What the OS profile page shows for each kind. agent_install: the agent partitions and debootstraps (no installer). */
export const PROFILE_KIND_LABELS: Record<ProfileKind, string> = { image: "Image", installer: "Installer", agent_install: "Debian (agent install)" };
/** initramfs-tools driver policies of an agent install: generic = MODULES=most, targeted = MODULES=dep. */
export const INITRAMFS_DRIVERS = ["generic", "targeted"] as const;
/** Debian releases the agent can debootstrap (agent_install profiles). */
export const AGENT_INSTALL_SUITES = ["bookworm"] as const;
export const OS_FAMILIES = ["debian", "ubuntu", "rhel"] as const;
export type OsFamily = (typeof OS_FAMILIES)[number];
/** Install templates an installer profile can use (rendered per machine, served over /boot/m/...). */
export const INSTALL_TEMPLATES = ["preseed", "autoinstall", "kickstart"] as const;
export type InstallTemplate = (typeof INSTALL_TEMPLATES)[number];
/** Static NIC configuration formats, one per distribution family. */
export const NET_CONFIG_FORMATS = ["ifupdown", "netplan", "nm-keyfile", "ifcfg"] as const;
export type NetConfigFormat = (typeof NET_CONFIG_FORMATS)[number];
export const IMAGE_FORMATS = ["raw", "raw.gz", "raw.xz", "raw.zst", "qcow2"] as const;
export const NIC_KINDS = ["ethernet", "bond", "vlan"] as const;
export const BOND_MODES = ["active-backup", "802.3ad", "balance-rr", "balance-xor", "balance-alb", "balance-tlb"] as const;

/** Linux interface names: 1-15 chars, no '/', whitespace or quotes; not "." or "..". */
export const ifnameSchema = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, "Interface names are 1-15 letters, digits, '.', '_' or '-'")
  .refine((s) => s !== "." && s !== "..", "Not an interface name");

export const ipv4 = z.string().trim().refine(isIPv4, { error: (i) => `"${String(i.input)}" is not an IPv4 address` });
export const prefixSchema = z.number().int().min(1).max(32);
export const mtuSchema = z.number().int().min(576).max(9216);
export const domainSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(isHostname, { error: (i) => `"${String(i.input)}" is not a DNS domain` });

/**
 * One kernel command-line argument list. Only characters that mean nothing to pxelinux, GRUB
 * (no `$;"'\` or braces) and iPXE (no `${`) and never a newline, NUL or quote.
 */
export const kernelArgsSchema = z
  .string()
  .max(1024)
  .regex(/^[A-Za-z0-9 ._,:=/+@%-]*$/, "Kernel arguments may contain letters, digits, spaces and . _ , : = / + @ % - only")
  .transform((s) => s.trim().replace(/ +/g, " "));

/** A path below Rackhand's HTTP root (`<dataDir>/http`), served as /boot/<path>: no '..', no absolute path. */
export const bootPathSchema = z
  .string()
  .trim()
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*(\/[A-Za-z0-9][A-Za-z0-9._+-]*)*$/, "A relative path like debian/12/linux (letters, digits, . _ + - and /)")
  .refine((s) => !s.split("/").some((seg) => seg === ".." || seg === "."), "'..' is not allowed in a path");

/** An http(s) URL that is safe inside a config line or a kernel argument (no spaces, quotes, newlines). */
export const safeUrlSchema = z
  .string()
  .trim()
  .max(1024)
  .regex(/^https?:\/\/[A-Za-z0-9._~:/?#[\]@!&()*+,;=%-]+$/, "An http:// or https:// URL without spaces or quotes")
  .refine((s) => !/['"$`\\{}]/.test(s), "Quotes, $, backquotes, backslashes and braces are not allowed in a URL");

/**
 * Rackhand's own base URL as machines reach it: scheme, host (name, IPv4 or [IPv6]), optional port and a path of
 * plain segments. Nothing else: it is pasted into GRUB entries (where `;` separates commands), iPXE scripts and
 * pxelinux kernel lines (where `?`, `&`, `#` and whitespace split or cut the line).
 */
export const baseUrlSchema = z
  .string()
  .trim()
  .max(200)
  .regex(
    /^https?:\/\/([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(\/[A-Za-z0-9._~-]+)*\/?$/,
    "A plain http(s)://host[:port][/path] URL: no query, fragment, spaces, quotes or ; & ? #",
  )
  .refine((s) => !/\/\.\.?(\/|$)/.test(s.replace(/^https?:\/\//, "/")), "'.' and '..' are not allowed in the path")
  .refine((s) => {
    const port = /^https?:\/\/[^/]*:([0-9]+)/.exec(s.replace(/\[[^\]]*\]/, "h"))?.[1];
    return port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
  }, "Port must be 1-65535");

export const sha256Schema = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[0-9a-f]{64}$/, "64 hexadecimal characters");

/** Text that becomes one value in a line-based file (preseed, keyfile): printable, single line. */
export const lineValueSchema = (max = 200) =>
  z
    .string()
    .max(max)
    .regex(/^[^\u0000-\u001f\u007f]*$/, "One line of printable characters");

const optional = <T extends z.ZodTypeAny>(s: T) =>
  z.preprocess((v) => (v === "" ? null : v), s.nullable().optional()) as unknown as z.ZodOptional<z.ZodNullable<T>>;

/** Provisioning network, stored in `settings` under "netboot" and edited by admins. */
export const AGENT_ENVIRONMENTS = ["busybox", "debian"] as const;
export const AGENT_ENVIRONMENT_LABELS: Record<(typeof AGENT_ENVIRONMENTS)[number], string> = {
  busybox: "Busybox RAM disk (fastest to boot)",
  debian: "Debian root file system (debootstrap; vendor tools, apt)",
};
export const netbootSettingsSchema = z
  .object({
    mode: z.enum(NETBOOT_MODES).default("off"),
    interface: ifnameSchema.default("eth1"),
    serverAddress: ipv4.default("10.77.0.1"),
    rangeStart: ipv4.default("10.77.0.100"),
    rangeEnd: ipv4.default("10.77.0.200"),
    netmask: ipv4.default("255.255.255.0"),
    gateway: optional(ipv4),
    dnsServers: z.array(ipv4).max(4).default([]),
    domain: optional(domainSchema),
    leaseTimeS: z.number().int().min(120).max(7 * 86400).default(3600),
    /** Base URL machines use to reach Rackhand over HTTP (kernels, installer files, agent API). */
    httpBaseUrl: baseUrlSchema.default("http://10.77.0.1:3000"),
    /** Answer IPv6 router solicitations on the interface (iPXE waits ~13 s for SLAAC otherwise). */
    ipv6RouterAdvertisements: z.boolean().default(false),
    /** DNS port for dnsmasq; 0 = no DNS (the default). */
    dnsPort: z.number().int().min(0).max(65535).default(0),
    /**
     * Where the agent runs: the busybox RAM disk itself, or the Debian root file system it fetches and switches to
     * (rootfs.tar.zst, `npm run ramdisk -- --debian`; a distribution userland for vendor tools, ~70 MB more to load).
     */
    agentEnvironment: z.enum(AGENT_ENVIRONMENTS).default("busybox"),
    /**
     * Package proxy for installers and agent installs (server/proxy): managed = Rackhand runs apt-cacher-ng on
     * serverAddress:proxyPort; external = proxyUrl; off = installers fetch from the profile's mirror directly.
     */
    proxyMode: z.enum(PROXY_MODES).default("off"),
    /** apt-cacher-ng 3.7 fails to bind ports from 32768 on ("Error resolving address for binding"). */
    proxyPort: z.number().int().min(1).max(32767, "apt-cacher-ng cannot listen above port 32767").default(3142),
    proxyUrl: optional(safeUrlSchema),
    /** UDP port of the installer syslog receiver on serverAddress (d-i log_port=, anaconda inst.syslog=); 0 = none. */
    installerLogPort: z.number().int().min(0).max(65535).default(5514),
  })
  .superRefine((s, ctx) => {
    if (s.proxyMode === "external" && !s.proxyUrl) ctx.addIssue({ code: "custom", path: ["proxyUrl"], message: "External proxy mode needs the proxy's URL" });
    const n = (ip: string) => ip.split(".").reduce((a, p) => a * 256 + Number(p), 0);
    if (n(s.rangeStart) > n(s.rangeEnd)) ctx.addIssue({ code: "custom", path: ["rangeEnd"], message: "Range end is before range start" });
    const mask = n(s.netmask);
    if (!/^1*0*$/.test(mask.toString(2).padStart(32, "0"))) ctx.addIssue({ code: "custom", path: ["netmask"], message: "Not a contiguous netmask" });
    for (const f of ["rangeStart", "rangeEnd", "gateway"] as const) {
      const v = s[f];
      if (v && (n(v) & mask) >>> 0 !== (n(s.serverAddress) & mask) >>> 0) {
        ctx.addIssue({ code: "custom", path: [f], message: `${v} is not in the server's subnet` });
      }
    }
  });
export type NetbootSettings = z.output<typeof netbootSettingsSchema>;

/**
 * The address machines reach Rackhand itself on (package proxy, installer syslog): the host of httpBaseUrl when it
 * is an IPv4 literal (the lab runs dnsmasq in a namespace on serverAddress, Rackhand on the host), else serverAddress.
 */
export function rackhandAddress(s: Pick<NetbootSettings, "httpBaseUrl" | "serverAddress">): string {
  try {
    const h = new URL(s.httpBaseUrl).hostname;
    if (isIPv4(h)) return h;
  } catch {
    /* validated elsewhere */
  }
  return s.serverAddress;
}

/** The package proxy URL installers and agents use under these settings, or null (mode off). */
export function packageProxyUrl(s: Pick<NetbootSettings, "proxyMode" | "proxyPort" | "proxyUrl" | "serverAddress" | "httpBaseUrl">): string | null {
  if (s.proxyMode === "managed") return `http://${rackhandAddress(s)}:${s.proxyPort}`;
  if (s.proxyMode === "external") return s.proxyUrl ?? null;
  return null;
}
export type NetbootSettingsInput = z.input<typeof netbootSettingsSchema>;

/** A software RAID array for image deploys (what the agent's raid step creates with mdadm). */
export const raidSpecSchema = z
  .object({
    level: z.union([z.literal(0), z.literal(1), z.literal(10)]),
    devices: z
      // As the agent's raid step accepts them: /dev/disk/by-id/… names have capitals, dots and colons.
      .array(z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, "A device path like /dev/sdb").refine((d) => !d.includes(".."), "Must not contain .."))
      .min(2, "At least two disks")
      .max(16)
      .refine((d) => new Set(d).size === d.length, "Each disk once"),
    name: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, "Letters, digits, _ and - (1-32)").default("root"),
    metadata: z.enum(["1.0", "1.2"]).default("1.0"),
  });
export type RaidSpec = z.output<typeof raidSpecSchema>;

/**
 * One OpenSSH public key line. The comment may be any printable text (non-ASCII names included) but no control
 * character of any kind — C0, DEL, C1 (U+0080-U+009F), format characters such as U+200E or U+FEFF, or line and
 * paragraph separators — nor a quote or backslash: cloud-init rejects the whole user-data file for one of them.
 */
export const sshKeySchema = z
  .string()
  .regex(/^(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\p{C}\p{Zl}\p{Zp}'"\\]{0,100})?$/u, "An OpenSSH public key line (printable characters only)");

/** Partition sizes of an agent install (MiB, whole numbers: they become sgdisk arguments). */
export const installLayoutSchema = z.object({
  espMiB: z.number().int("Whole MiB").min(64, "The EFI system partition needs at least 64 MiB").max(4096, "At most 4096 MiB").default(512),
  swapMiB: z.number().int("Whole MiB").min(0).max(262144, "At most 256 GiB of swap").default(0),
  /** null: the rest of the disk. */
  rootMiB: z.number().int("Whole MiB").min(2048, "Debian needs at least 2048 MiB for its root file system").max(64 * 1024 * 1024, "At most 64 TiB").nullish(),
});
export type InstallLayout = z.output<typeof installLayoutSchema>;

/** System accounts of a Debian base system: the profile's user must not be one of them. */
export const RESERVED_USER_NAMES = ["root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody", "sshd", "messagebus", "systemd-network", "systemd-resolve", "systemd-timesync", "gnats", "staff", "sudo", "adm", "users", "disk"];

/** Installer options of an OS profile, stored as JSON in os_profiles.options. */
export const profileOptionsSchema = z.object({
  mirror: optional(safeUrlSchema),
  locale: z.string().regex(/^[A-Za-z_]+(\.[A-Za-z0-9-]+)?$/, "e.g. en_US.UTF-8").default("en_US.UTF-8"),
  timezone: z.string().regex(/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/, "e.g. Etc/UTC").default("Etc/UTC"),
  username: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "A Unix user name").default("rackhand"),
  /** crypt(3) hash, e.g. from `mkpasswd -m sha-512`. */
  passwordHash: optional(z.string().regex(/^\$[0-9a-z]+\$[A-Za-z0-9./$=,]+$/, "A crypt(3) hash such as $6$salt$hash")),
  sshKeys: z.array(sshKeySchema).max(20).default([]),
  packages: z.array(z.string().max(100, "A package name is at most 100 characters").regex(/^[a-z0-9][a-z0-9+.-]*$/, "A package name")).max(100).default([]),
  /** Install target disk, e.g. /dev/sda; empty = the installer's first disk. */
  disk: optional(z.string().regex(/^\/dev\/[a-z0-9/_-]+$/, "A device path like /dev/sda")),
  netConfig: optional(z.enum(NET_CONFIG_FORMATS)),
  /**
   * Image deploys: the written image's root file system on the target (e.g. /dev/sda2), where configure_network
   * writes the rendered network configuration. Empty: the image configures its network itself (DHCP).
   */
  rootPartition: optional(
    z
      .string()
      .regex(/^(\/dev\/[a-z0-9/_-]+|LABEL=[A-Za-z0-9_.-]{1,64}|UUID=[0-9A-Fa-f-]{4,36})$/, "A device path like /dev/sda2, or LABEL=… / UUID=… of the file system"),
  ),
  /**
   * Image deploys onto software RAID: the agent creates the array from these disks and writes the image onto it.
   * Metadata 1.0 (at the end of each member) keeps a RAID 1 member bootable by BIOS as if it were a plain disk.
   */
  raid: optional(raidSpecSchema),
  /**
   * The firmware the image or installer boots with; unset: either. A machine known to boot with the other one is
   * skipped by bulk plans and refused by a deploy (server/operator/plan.ts).
   */
  firmware: optional(z.enum(["bios", "uefi"])),
  /**
   * Agent installs (kind agent_install): the disk layout the agent's partition step creates. A BIOS boot partition
   * (BIOS) or an EFI system partition of espMiB (UEFI) by the machine's firmware, then swap when swapMiB > 0, then
   * root (rootMiB, or the rest of the disk when empty).
   */
  installLayout: optional(installLayoutSchema),
  /** Agent installs: the Debian release debootstrap installs. */
  suite: z.enum(AGENT_INSTALL_SUITES).default("bookworm"),
  /**
   * Agent installs: the drivers in the installed system's initramfs, as debian-installer's driver-policy asks.
   * generic (initramfs-tools MODULES=most, Debian's default): the disk still boots when moved to other hardware.
   * targeted (MODULES=dep): only what this machine's root file system needs: about a quarter of the size, and built
   * in a fraction of the time (under QEMU TCG ~14 min → a few); the agent installs on the machine itself.
   */
  initramfsDrivers: z.enum(INITRAMFS_DRIVERS).default("generic"),
  /**
   * Image deploys: a script the agent runs in its RAM disk after the image is written and configured (firmware,
   * BIOS settings, a last tweak). Visible to everyone who can read profiles: no secrets in it.
   */
  postInstallScript: optional(
    z.object({
      script: z.string().min(1, "Empty script").max(64 * 1024, "At most 64 KiB"),
      interpreter: z.string().regex(/^\/[A-Za-z0-9/_.-]+$/, "An absolute path like /bin/sh").default("/bin/sh"),
      timeoutS: z.number().int().min(1).max(3000).default(600),
    }),
  ),
});
export type ProfileOptions = z.output<typeof profileOptionsSchema>;

const profileFields = {
  name: z.string().trim().min(1, "Name is required").max(64).regex(/^[A-Za-z0-9][A-Za-z0-9 ._()-]*$/, "Letters, digits, space, . _ - ( )"),
  kind: z.enum(PROFILE_KINDS),
  osFamily: optional(z.enum(OS_FAMILIES)),
  kernel: optional(bootPathSchema),
  initrd: optional(bootPathSchema),
  kernelArgs: optional(kernelArgsSchema),
  imageUrl: optional(safeUrlSchema),
  imageSha256: optional(sha256Schema),
  imageFormat: optional(z.enum(IMAGE_FORMATS)),
  template: optional(z.enum(INSTALL_TEMPLATES)),
  options: profileOptionsSchema.default(profileOptionsSchema.parse({})),
};

function checkProfile(
  p: { kind: string; kernel?: string | null; initrd?: string | null; imageUrl?: string | null; imageSha256?: string | null; template?: string | null; osFamily?: string | null; options?: ProfileOptions },
  ctx: z.RefinementCtx,
) {
  if (p.kind === "agent_install") {
    if (p.osFamily && p.osFamily !== "debian") ctx.addIssue({ code: "custom", path: ["osFamily"], message: "An agent install installs Debian" });
    const user = p.options?.username;
    if (user && RESERVED_USER_NAMES.includes(user)) ctx.addIssue({ code: "custom", path: ["options", "username"], message: `${user} is a system account of Debian: choose another user name` });
    if (p.options?.raid) ctx.addIssue({ code: "custom", path: ["options", "raid"], message: "An agent install does not build RAID (yet): leave RAID empty" });
  } else if (p.kind === "image") {
    if (!p.imageUrl) ctx.addIssue({ code: "custom", path: ["imageUrl"], message: "An image profile needs an image URL" });
    if (!p.imageSha256) ctx.addIssue({ code: "custom", path: ["imageSha256"], message: "An image profile needs the image's sha256" });
  } else {
    if (!p.kernel) ctx.addIssue({ code: "custom", path: ["kernel"], message: "An installer profile needs a kernel" });
    if (!p.initrd) ctx.addIssue({ code: "custom", path: ["initrd"], message: "An installer profile needs an initrd" });
    if (!p.template) ctx.addIssue({ code: "custom", path: ["template"], message: "An installer profile needs a template" });
    const fam = { preseed: ["debian", "ubuntu"], autoinstall: ["ubuntu"], kickstart: ["rhel"] } as Record<string, string[]>;
    if (p.template && p.osFamily && !fam[p.template]!.includes(p.osFamily)) {
      ctx.addIssue({ code: "custom", path: ["template"], message: `${p.template} does not apply to ${p.osFamily}` });
    }
  }
}

export const osProfileCreateSchema = z.object(profileFields).superRefine(checkProfile);
export const osProfileUpdateSchema = z
  .object(profileFields)
  .extend({ id: z.number().int().positive() })
  .superRefine(checkProfile);
export type OsProfileInput = z.output<typeof osProfileCreateSchema>;
export type OsProfileFormInput = z.input<typeof osProfileCreateSchema>;

/** Machine states in which the machine boots Rackhand's RAM disk (or its installer): the lifecycle's busy states. */
export const NETBOOT_STATES = BUSY_STATES;
