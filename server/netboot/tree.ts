/**
 * The boot tree as a pure function of database rows (DESIGN §6). Every value that becomes a path, a config
 * line or a kernel argument is validated here, before anything is written: a bad row makes the whole
 * computation throw AppError VALIDATION, so the reconciler keeps the previous tree.
 */
import { z } from "zod";
import { AppError } from "../../lib/errors";
import type { MachineState } from "../../lib/lifecycle";
import { dnsmasqNameProblem, fqdnProblem, isHostname } from "../../lib/net";
import {
  bootPathSchema,
  ipv4,
  kernelArgsSchema,
  NETBOOT_STATES,
  baseUrlSchema,
  rackhandAddress,
  type InstallTemplate,
  type NetbootSettings,
} from "../../lib/netboot";
import { macSchema } from "../../lib/schemas";
import {
  macHyphen,
  renderDnsmasqConf,
  renderGrub,
  renderGrubDispatch,
  renderHostLine,
  renderIpxe,
  renderIpxeRoot,
  renderPxelinux,
  type BootTarget,
  type DnsmasqPaths,
} from "./render-boot";

export interface ProfileBoot {
  id: number;
  kind: "image" | "installer" | "agent_install";
  kernel: string | null;
  initrd: string | null;
  kernelArgs: string | null;
  template: InstallTemplate | null;
  mirror: string | null;
}

export interface MachineBootRow {
  id: number;
  name: string;
  state: MachineState;
  nics: { mac: string; ip: string | null; isBoot: boolean }[];
  profile: ProfileBoot | null;
  /** Id of the event that moved the machine into its current state: one install session, see install-token.ts. */
  sessionId: number | null;
  /**
   * Where the machine's running job last pointed its boot entry (its set_boot_target step): a job that is
   * finishing asks for the local disk before the machine's state leaves deploying/inspecting/cleaning.
   */
  jobBootTarget?: "agent" | "installer" | "disk" | null;
}

export interface TreeContext {
  settings: NetbootSettings;
  paths: DnsmasqPaths;
  /** User dnsmasq runs as (null: leave it to dnsmasq). */
  runAs: string | null;
  /** Token for /boot/m/<id>/<token>/... while the machine installs. */
  installToken(machineId: number, sessionId: number): string;
  /** The agent's per-boot lookup secret (agent-nonce.ts), put on the agent RAM disk's kernel command line. */
  agentNonce(machineId: number, sessionId: number): string;
  /** Boot loaders present in the TFTP root (loaders.ts); absent: assume all. */
  loaders?: ReadonlySet<string>;
  /**
   * The agent RAM disk's payload (ramdisk/builder.ts: Node.js, the tools, the agent) and its sha256, from the
   * RAM disk's manifest.json; null: a RAM disk built whole (no payload), or none built yet.
   */
  agentPayload?: { file: string; sha256: string } | null;
}

/** Relative paths of the tree (below <dataDir>/netboot) → file contents. */
export type Tree = Map<string, string>;

const payloadFileSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "a plain file name");
const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits");

export const HOSTS_DIR = "hosts.d";
/** dnsmasq's dhcp-hostsfile: every NIC's dhcp-host line as of the last full reconcile (see service.ts). */
export const HOSTS_FILE = "hosts";
export const TFTP_DIR = "tftp";
export const CONF_FILE = "dnsmasq.conf";

// Defence in depth: the same rules as the machine name schema, checked again where the name reaches dnsmasq.
const hostnameSchema = z
  .string()
  .refine(isHostname, { error: (i) => `unsafe host name ${JSON.stringify(i.input)}` })
  .superRefine((n, ctx) => {
    const problem = dnsmasqNameProblem(n);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const nonceSchema = z.string().regex(/^[0-9a-f]{64}$/, "not 64 hex digits");

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new AppError("VALIDATION", `Netboot refused ${what}: ${r.error.issues[0]?.message ?? "invalid"}`, [{ field: what, message: r.error.issues[0]?.message ?? "invalid" }]);
  }
  return r.data;
}

/** The files every tree has, whatever the machines: dnsmasq.conf and the unknown-MAC defaults (local boot). */
export function baseTree(ctx: TreeContext): Tree {
  const t: Tree = new Map();
  t.set(CONF_FILE, renderDnsmasqConf(ctx.settings, ctx.paths, ctx.runAs, ctx.loaders ?? null));
  const local: BootTarget = { kind: "local", reason: "unknown MAC, booting from local disk" };
  t.set(`${TFTP_DIR}/boot.ipxe`, renderIpxeRoot());
  t.set(`${TFTP_DIR}/ipxe/default.ipxe`, renderIpxe("unknown", local));
  t.set(`${TFTP_DIR}/pxelinux.cfg/default`, renderPxelinux("unknown", local));
  t.set(`${TFTP_DIR}/grub/grub.cfg`, renderGrubDispatch(renderGrub("unknown", local)));
  return t;
}

/** What this machine should boot now. @throws AppError VALIDATION */
export function bootTarget(m: MachineBootRow, ctx: TreeContext): BootTarget {
  if (!(NETBOOT_STATES as readonly string[]).includes(m.state)) return { kind: "local", reason: `${m.state}, booting from local disk` };
  if (m.jobBootTarget === "disk") return { kind: "local", reason: `${m.state}, job finishing: booting from local disk` };
  const base = check(baseUrlSchema, ctx.settings.httpBaseUrl, "httpBaseUrl").replace(/\/+$/, "");
  const p = m.profile;
  if (m.state === "deploying" && p?.kind === "installer" && p.kernel && p.initrd && p.template && m.sessionId != null) {
    const kernel = check(bootPathSchema, p.kernel, `profile ${p.id} kernel`);
    const initrd = check(bootPathSchema, p.initrd, `profile ${p.id} initrd`);
    const extra = check(kernelArgsSchema, p.kernelArgs ?? "", `profile ${p.id} kernel arguments`);
    const files = `${base}/boot/m/${m.id}/${ctx.installToken(m.id, m.sessionId)}`;
    const args = [...(extra ? extra.split(" ") : []), ...installerArgs(p.template, files, m.name, ctx.settings.domain ?? null), ...installerLogArgs(p.template, ctx.settings), ...staticNetcfgArgs(p.template, m, ctx.settings)];
    return { kind: "netboot", label: "installer", kernel: `${base}/boot/${kernel}`, initrd: `${base}/boot/${initrd}`, args };
  }
  // The agent RAM disk (npm run ramdisk) lives under <dataDir>/http/ramdisk/.
  return {
    kind: "netboot",
    label: "agent",
    kernel: `${base}/boot/ramdisk/vmlinuz`,
    initrd: `${base}/boot/ramdisk/initrd.img`,
    args: [
      ...["console=tty0", "console=ttyS0,115200", `rackhand.api=${base}`, `rackhand.machine=${m.id}`, `rackhand.mode=${m.state}`],
      // The secret the agent's lookup must present: only this machine's boot entry carries it.
      ...(m.sessionId != null ? [`rackhand.nonce=${check(nonceSchema, ctx.agentNonce(m.id, m.sessionId), `machine ${m.id} agent nonce`)}`] : []),
      // Stage 1 fetches the rest of the agent environment itself, and refuses anything but these bytes (the Debian
      // variant's root file system carries its own Node.js and agent instead).
      ...(ctx.agentPayload && ctx.settings.agentEnvironment !== "debian" ? [`rackhand.payload=${base}/boot/ramdisk/${check(payloadFileSchema, ctx.agentPayload.file, "agent payload file")}`, `rackhand.payload_sha256=${check(sha256Schema, ctx.agentPayload.sha256, "agent payload sha256")}`] : []),
      // The Debian variant: the RAM disk's /init fetches this root file system and runs the agent in it.
      ...(ctx.settings.agentEnvironment === "debian" ? [`rackhand.rootfs=${base}/boot/ramdisk/rootfs.tar.zst`] : []),
    ],
  };
}

function installerArgs(template: InstallTemplate, files: string, hostname: string, domain: string | null): string[] {
  switch (template) {
    case "preseed":
      return ["auto=true", "priority=critical", `url=${files}/preseed.cfg`, `hostname=${hostname}`, `domain=${domain ?? "localdomain"}`, "interface=auto"];
    case "autoinstall":
      return ["autoinstall", "ip=dhcp", `ds=nocloud-net;s=${files}/`];
    case "kickstart":
      return [`inst.ks=${files}/ks.cfg`, "ip=dhcp"];
  }
}

/**
 * d-i configures its network before it fetches the preseed, so a machine with a reserved address gets it as
 * static netcfg on the command line (the provisioning subnet's netmask, gateway and first DNS server).
 * netcfg asks for name servers at priority critical: without a value here a real d-i stopped at that prompt
 * (lab/di-install.vm.test.ts). With no DNS server configured it gets serverAddress, where the managed dnsmasq
 * answers when its DNS port is on (a closed port fails a lookup at once: no timeouts).
 */
function staticNetcfgArgs(template: InstallTemplate, m: MachineBootRow, s: NetbootSettings): string[] {
  const ip = m.nics.find((n) => n.isBoot)?.ip;
  if (template !== "preseed" || !ip) return [];
  const a = check(ipv4, ip, `machine ${m.id} IP`);
  return [
    "netcfg/disable_autoconfig=true",
    `netcfg/get_ipaddress=${a}`,
    `netcfg/get_netmask=${check(ipv4, s.netmask, "netmask")}`,
    ...(s.gateway ? [`netcfg/get_gateway=${check(ipv4, s.gateway, "gateway")}`] : ["netcfg/no_default_route=true"]),
    `netcfg/get_nameservers=${check(ipv4, s.dnsServers[0] ?? s.serverAddress, "DNS server")}`,
    "netcfg/confirm_static=true",
  ];
}

/** Where the installer sends its syslog (server/installer-logs): d-i log_host/log_port, anaconda inst.syslog. */
function installerLogArgs(template: InstallTemplate, s: NetbootSettings): string[] {
  if (!s.installerLogPort) return [];
  const host = check(ipv4, rackhandAddress(s), "installer log address");
  if (template === "preseed") return [`log_host=${host}`, `log_port=${s.installerLogPort}`];
  if (template === "kickstart") return [`inst.syslog=${host}:${s.installerLogPort}`];
  return []; // subiquity reports through its reporting: webhook instead
}

/** The files one machine owns: a hosts.d file per NIC and boot entries for each NIC's MAC. @throws AppError VALIDATION */
export function machineTree(m: MachineBootRow, ctx: TreeContext): Tree {
  const t: Tree = new Map();
  const name = check(hostnameSchema, m.name, `machine ${m.id} name`);
  const long = fqdnProblem(name, ctx.settings.domain ?? null);
  if (long) throw new AppError("VALIDATION", `Netboot refused machine ${m.id} name: ${long}`, [{ field: `machine ${m.id} name`, message: long }]);
  const target = bootTarget(m, ctx);
  for (const nic of m.nics) {
    const mac = check(macSchema, nic.mac, `machine ${name} MAC`);
    if (mac !== nic.mac) throw new AppError("VALIDATION", `Netboot refused machine ${name} MAC ${JSON.stringify(nic.mac)}: not canonical`);
    const ip = nic.ip == null ? null : check(ipv4, nic.ip, `machine ${name} IP`);
    const hy = macHyphen(mac);
    t.set(`${HOSTS_DIR}/${hy}`, renderHostLine(mac, ip, nic.isBoot ? name : null));
    // A machine that boots its local disk needs no entry of its own: every loader falls back to the local-boot
    // default (pxelinux.cfg/default, grub.cfg's fallback, ipxe/default.ipxe). Only netbooting machines cost files.
    if (target.kind === "local") continue;
    t.set(`${TFTP_DIR}/pxelinux.cfg/01-${hy}`, renderPxelinux(name, target));
    t.set(`${TFTP_DIR}/grub/grub.cfg-01-${hy}`, renderGrub(name, target));
    t.set(`${TFTP_DIR}/ipxe/${hy}.ipxe`, renderIpxe(name, target));
  }
  return t;
}

/** `hosts.d/<mac-hyphen>` key of a machine tree → the MAC's hyphen spelling; null for other paths. */
export function hostKey(rel: string): string | null {
  return rel.startsWith(`${HOSTS_DIR}/`) ? rel.slice(HOSTS_DIR.length + 1) : null;
}

/** The dhcp-hostsfile's content: one line per NIC, in the map's order. */
export function renderHostsFile(lines: ReadonlyMap<string, string>): string {
  let s = "";
  for (const l of lines.values()) s += l;
  return s;
}

/**
 * The whole desired tree. Every NIC's host line goes into the one dhcp-hostsfile (`hosts`: a single file instead
 * of one per NIC), so `hosts.d` is empty after a full reconcile; `owners` still names each machine's host lines
 * by their `hosts.d/<mac>` key, and `hosts` maps each MAC (hyphen spelling) to its line.
 * @throws AppError VALIDATION naming the first bad value
 */
export function desiredTree(machines: MachineBootRow[], ctx: TreeContext): { tree: Tree; owners: Map<number, string[]>; hosts: Map<string, string> } {
  const tree = baseTree(ctx);
  const { owners, hosts } = addMachines(tree, machines, ctx);
  tree.set(HOSTS_FILE, renderHostsFile(hosts));
  return { tree, owners, hosts };
}

/**
 * Add these machines' files to `tree`, except their host lines: those come back in `hosts` (MAC, hyphen spelling →
 * line), for the caller to place. `owners`: each machine's keys, host lines as `hosts.d/<mac>`. @throws AppError VALIDATION
 */
export function addMachines(tree: Tree, machines: MachineBootRow[], ctx: TreeContext): { owners: Map<number, string[]>; hosts: Map<string, string> } {
  const owners = new Map<number, string[]>();
  const hosts = new Map<string, string>();
  for (const m of machines) {
    const mt = machineTree(m, ctx);
    owners.set(m.id, [...mt.keys()]);
    for (const [k, v] of mt) {
      const hy = hostKey(k);
      if (hy) hosts.set(hy, v);
      else tree.set(k, v);
    }
  }
  return { owners, hosts };
}
