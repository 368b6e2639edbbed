/**
 * Installer answer files rendered per machine: Debian/Ubuntu preseed, Ubuntu autoinstall (cloud-init
 * user-data + meta-data) and RHEL-family kickstart. Each reports completion to Rackhand with a POST to
 * `doneUrl` at the end of the install.
 */
import { AppError } from "../../../lib/errors";
import { fqdnProblem, isHostname } from "../../../lib/net";
import type { MachineNetworkInput } from "../../../lib/net-model";
import { sshKeySchema, type ProfileOptions } from "../../../lib/netboot";
import { render, sh, shWord } from "./engine";
import { bondOptions, netmaskOf, netViews, renderNetplan, type IfaceView } from "./net-config";

export interface InstallContext {
  machineId: number;
  sessionId: number;
  hostname: string;
  domain: string;
  options: ProfileOptions;
  /** Validated again by every renderer (netViews). */
  net: MachineNetworkInput;
  /** Base of this machine's install files (…/boot/m/<id>/<token>). */
  filesUrl: string;
  doneUrl: string;
  /** The provisioning network's package proxy (server/proxy), null when none. */
  proxy?: string | null;
}

/**
 * Defence in depth for the values every answer file writes: the host name and its FQDN (kickstart writes
 * `--hostname=<name>.<domain>`), and SSH keys (one control character makes cloud-init reject all of user-data).
 * @throws AppError VALIDATION
 */
function checkContext(c: InstallContext): InstallContext {
  const refuse = (field: string, message: string) => {
    throw new AppError("VALIDATION", `Install files refused ${field}: ${message}`, [{ field, message }]);
  };
  if (!isHostname(c.hostname)) refuse("hostname", `${JSON.stringify(c.hostname.slice(0, 80))} is not a host name`);
  if (!isHostname(c.domain)) refuse("domain", `${JSON.stringify(c.domain.slice(0, 80))} is not a domain`);
  const long = fqdnProblem(c.hostname, c.domain);
  if (long) refuse("hostname", long);
  for (const k of c.options.sshKeys) if (!sshKeySchema.safeParse(k).success) refuse("sshKeys", "an SSH key line with characters other than printable text");
  return c;
}

/** Unmount whatever the installer (or an old install) activated on the disks, so partman/curtin/anaconda can repartition. */
const UNMOUNT =
  "swapoff -a; for m in $(awk '$1 ~ \"^/dev/(sd|vd|nvme|hd|xvd|md|mapper)\" {print $2}' /proc/mounts | sort -r); do umount -l \"$m\"; done; " +
  "vgchange -an 2>/dev/null; mdadm --stop --scan 2>/dev/null; true";

const PRESEED = `# <%~ it.head %>
d-i debian-installer/locale string <%= it.o.locale %>
d-i keyboard-configuration/xkb-keymap select us
d-i netcfg/choose_interface select auto
<% if (it.primary) { -%>
d-i netcfg/disable_autoconfig boolean true
d-i netcfg/get_ipaddress string <%= it.primary.address %>
<% if (it.primary.netmask) { -%>
d-i netcfg/get_netmask string <%= it.primary.netmask %>
<% } -%>
<% if (it.primary.gateway) { -%>
d-i netcfg/get_gateway string <%= it.primary.gateway %>
<% } -%>
d-i netcfg/get_nameservers string <%= it.primary.dns.join(" ") %>
d-i netcfg/confirm_static boolean true
<% } -%>
d-i netcfg/get_hostname string <%= it.hostname %>
d-i netcfg/get_domain string <%= it.domain %>
d-i netcfg/hostname string <%= it.hostname %>
<% if (it.mirror) { -%>
d-i mirror/country string manual
d-i mirror/protocol string <%= it.mirror.protocol %>
d-i mirror/<%= it.mirror.protocol %>/hostname string <%= it.mirror.host %>
d-i mirror/<%= it.mirror.protocol %>/directory string <%= it.mirror.path %>
d-i mirror/<%= it.mirror.protocol %>/proxy string<% if (it.proxy) { %> <%= it.proxy %><% } %>
<% } else if (it.proxy) { -%>
d-i mirror/http/proxy string <%= it.proxy %>
<% } -%>
d-i clock-setup/utc boolean true
d-i time/zone string <%= it.o.timezone %>
d-i passwd/root-login boolean false
d-i passwd/user-fullname string <%= it.o.username %>
d-i passwd/username string <%= it.o.username %>
<% if (it.o.passwordHash) { -%>
d-i passwd/user-password-crypted password <%= it.o.passwordHash %>
<% } else { -%>
d-i passwd/user-password-crypted password !
<% } -%>
# Disks may carry mounted partitions (swap, an md array or LVM the installer activated): unmount them first
# and let partman unmount what is still active.
d-i partman/early_command string <%~ it.unmount %>
d-i partman/unmount_active boolean true
<% if (it.o.disk) { -%>
d-i partman-auto/disk string <%= it.o.disk %>
<% } -%>
d-i partman-auto/method string regular
# Used disks (old LVM, md RAID, mounted file systems): answers from the d-i manual; UNPROVEN on the lab's mirror,
# whose partman udebs are 404 (docs/ARCHITECTURE.md, "Used disks"); the agent-install profile clears disks itself.
d-i partman-auto/purge_lvm_from_device boolean true
d-i partman-lvm/device_remove_lvm boolean true
d-i partman-lvm/device_remove_lvm_span boolean true
d-i partman-md/device_remove_md boolean true
d-i partman-lvm/confirm boolean true
d-i partman-lvm/confirm_nooverwrite boolean true
d-i partman-md/confirm boolean true
d-i partman-md/confirm_nooverwrite boolean true
d-i partman-auto/choose_recipe select atomic
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
# The initramfs driver policy: "most" (generic, Debian's default) or "dep" (this machine's root device only).
d-i base-installer/initramfs-tools/driver-policy select <%= it.o.initramfsDrivers === "targeted" ? "dep" : "most" %>
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string default
tasksel tasksel/first multiselect standard, ssh-server
d-i pkgsel/include string <%= ["openssh-server", "wget", ...it.o.packages].join(" ") %>
d-i preseed/late_command string <%~ it.late %>
d-i finish-install/reboot_in_progress note
`;

export function renderPreseed(c: InstallContext): string {
  checkContext(c);
  const { views } = netViews(c.net);
  const primary = installerAddress(views);
  const late = [
    ...(c.options.sshKeys.length
      ? [
          `mkdir -p /target/home/${c.options.username}/.ssh`,
          ...c.options.sshKeys.map((k) => `echo ${sh(k)} >> /target/home/${c.options.username}/.ssh/authorized_keys`),
          `in-target chown -R ${c.options.username}: /home/${c.options.username}/.ssh`,
          `chmod 700 /target/home/${c.options.username}/.ssh`,
        ]
      : []),
    ...(!dInstallerSuffices(views)
      ? [`in-target wget -q -O /etc/network/interfaces ${sh(`${c.filesUrl}/net/ifupdown/interfaces`)}`]
      : []),
    `wget -q -O /dev/null --post-data='' ${sh(c.doneUrl)} || true`,
  ].join("; ");
  return render("line", "preseed", PRESEED, {
    head: "generated by Rackhand for this machine and this install only",
    o: c.options,
    hostname: c.hostname,
    domain: c.domain,
    primary,
    mirror: c.options.mirror ? splitMirror(c.options.mirror) : null,
    proxy: c.proxy ?? null,
    unmount: UNMOUNT,
    late,
  });
}

const USER_DATA = `#cloud-config
# <%~ it.head %>
autoinstall:
  version: 1
  locale: <%= it.o.locale %>
  timezone: <%= it.o.timezone %>
  identity:
    hostname: <%= it.hostname %>
    username: <%= it.o.username %>
    password: <%= it.o.passwordHash || "!" %>
  ssh:
    install-server: true
    allow-pw: false
    authorized-keys: [<%~ it.o.sshKeys.map((k) => JSON.stringify(k)).join(", ") %>]
<% if (it.proxy) { -%>
  proxy: <%= it.proxy %>
<% } -%>
<% if (it.o.mirror) { -%>
  apt:
    primary:
      - arches: [default]
        uri: <%= it.o.mirror %>
<% } -%>
  storage:
    layout:
      name: direct
<% if (it.o.disk) { -%>
      match:
        path: <%= it.o.disk %>
<% } -%>
  early-commands:
    - <%= it.unmount %>
  packages: [<%~ it.o.packages.map((p) => JSON.stringify(p)).join(", ") %>]
<% if (it.netplan) { -%>
  network:
<%~ it.netplan %>
<% } -%>
  reporting:
    rackhand:
      type: webhook
      endpoint: <%= it.events %>
  late-commands:
    - <%= it.done %>
`;

/** cloud-init user-data for Ubuntu's autoinstall. */
export function renderAutoinstallUserData(c: InstallContext): string {
  checkContext(c);
  const { views } = netViews(c.net);
  const netplan = !plainDhcp(views)
    ? renderNetplan(c.net)[0]!.content
        .split("\n")
        .filter((l) => l && !l.startsWith("#") && l !== "network:")
        .map((l) => `  ${l}`)
        .join("\n")
    : null;
  return render("yaml", "autoinstall", USER_DATA, {
    head: "generated by Rackhand for this machine and this install only",
    o: c.options,
    hostname: c.hostname,
    unmount: UNMOUNT,
    netplan,
    proxy: c.proxy ?? null,
    events: `${c.filesUrl}/events`,
    done: `curl -fsS -X POST ${sh(c.doneUrl)} || true`,
  });
}

export function renderAutoinstallMetaData(c: InstallContext): string {
  checkContext(c);
  return render("yaml", "meta-data", `instance-id: <%= it.id %>\nlocal-hostname: <%= it.hostname %>\n`, { id: `rackhand-${c.machineId}-${c.sessionId}`, hostname: c.hostname });
}

const KICKSTART = `# <%~ it.head %>
text
lang <%= it.o.locale %>
keyboard us
timezone <%= it.o.timezone %> --utc
<% if (it.o.mirror) { -%>
url --url=<%= it.o.mirror %><% if (it.proxy) { %> --proxy=<%= it.proxy %><% } %>
<% } -%>
<% for (const l of it.network) { -%>
network <%~ l %>
<% } -%>
rootpw --lock
user --name=<%= it.o.username %> --groups=wheel<% if (it.o.passwordHash) { %> --iscrypted --password=<%= it.o.passwordHash %><% } else { %> --lock<% } %>

<% for (const k of it.o.sshKeys) { -%>
sshkey --username=<%= it.o.username %> <%= k %>
<% } -%>
<% if (it.o.disk) { -%>
ignoredisk --only-use=<%= it.o.disk.replace("/dev/", "") %>
<% } -%>
zerombr
clearpart --all --initlabel
autopart
bootloader
reboot

%pre
<%~ it.unmount %>
%end

%packages
@^minimal-environment
<% for (const p of it.o.packages) { -%>
<%= p %>
<% } -%>
%end

%post
curl -fsS -X POST <%= it.doneUrl %> || true
%end
`;

export function renderKickstart(c: InstallContext): string {
  checkContext(c);
  const { views } = netViews(c.net);
  const primary = views.find((v) => v.addr4 || v.addr6) ?? views.find((v) => v.v4 !== "member");
  const network = views.map((v) => kickstartNetwork(v, v === primary, c));
  return render("shell", "kickstart", KICKSTART, { head: "generated by Rackhand for this machine and this install only", o: c.options, network, unmount: UNMOUNT, doneUrl: c.doneUrl, proxy: c.proxy ?? null });
}

/** One kickstart `network` line (pykickstart's network command; anaconda creates NetworkManager profiles from it). */
function kickstartNetwork(v: IfaceView, primary: boolean, c: InstallContext): string {
  const i = v.it;
  const a: string[] = [`--device=${i.kind === "vlan" ? i.parent : i.name}`];
  if (v.v4 === "member") return [...a, "--onboot=yes", "--noipv4", "--noipv6"].map(shWord).join(" ");
  if (i.kind === "bond") a.push(`--bondslaves=${i.members.join(",")}`, `--bondopts=${bondOptions(i).map(([k, val]) => `${k}=${val}`).join(",")}`);
  if (i.kind === "vlan") a.push(`--vlanid=${i.vlanId}`, `--interfacename=${i.name}`);
  if (v.addr4) {
    a.push("--bootproto=static", `--ip=${v.addr4.address}`, `--netmask=${netmaskOf(v.addr4.prefix)}`);
    if (i.gateway4) a.push(`--gateway=${i.gateway4}`);
  } else if (v.v4 === "dhcp") a.push("--bootproto=dhcp");
  else a.push("--noipv4");
  if (v.addr6) {
    a.push(`--ipv6=${v.addr6.address}/${v.addr6.prefix}`);
    if (i.gateway6) a.push(`--ipv6gateway=${i.gateway6}`);
  } else if (v.v6 === "slaac") a.push("--ipv6=auto");
  else if (v.v6 === "dhcp") a.push("--ipv6=dhcp");
  else a.push("--noipv6");
  if ((v.addr4 || v.addr6 || i.dns.length) && v.dns.length) a.push(`--nameserver=${v.dns.join(",")}`);
  if (i.mtu) a.push(`--mtu=${i.mtu}`);
  if (primary) a.push(`--hostname=${c.hostname}.${c.domain}`, "--activate");
  return a.map(shWord).join(" ");
}

/**
 * What d-i's netcfg configures itself (netcfg/get_ipaddress): the first interface with a static address, IPv4
 * when it has one (address + netmask), else IPv6 as address/prefix (netcfg reads a CIDR suffix and then skips the
 * netmask question). netcfg configures one address of one family on one NIC; everything else (the second family of
 * a dual-stack interface, bonds, VLANs, MTU, SLAAC/DHCPv6 for the installed system) comes from the ifupdown file
 * the late_command fetches. SLAAC and DHCPv6 need no answers: netcfg's autoconfiguration tries them itself.
 */
function installerAddress(views: IfaceView[]): { address: string; netmask: string | null; gateway: string | null; dns: string[] } | null {
  const v = views.find((x) => x.addr4 || x.addr6);
  if (!v) return null;
  if (v.addr4) return { address: v.addr4.address, netmask: netmaskOf(v.addr4.prefix), gateway: v.it.gateway4 ?? null, dns: v.dns };
  return { address: `${v.addr6!.address}/${v.addr6!.prefix}`, netmask: null, gateway: v.it.gateway6 ?? null, dns: v.dns };
}

/** One plain NIC with IPv4 only (static or DHCP): the interfaces file d-i writes says the same as ours. */
function dInstallerSuffices(views: IfaceView[]): boolean {
  return views.length <= 1 && views.every((v) => v.it.kind === "ethernet" && (v.v4 === "static" || v.v4 === "dhcp") && v.v6 === "none" && !v.it.mtu && !v.it.dns.length);
}

/** Every interface a plain NIC on DHCPv4 only: the installer's default network config is right. */
function plainDhcp(views: IfaceView[]): boolean {
  return views.every((v) => v.it.kind === "ethernet" && v.v4 === "dhcp" && v.v6 === "none" && !v.it.mtu && !v.it.dns.length);
}

function splitMirror(url: string): { protocol: string; host: string; path: string } {
  const u = new URL(url);
  return { protocol: u.protocol.replace(":", ""), host: u.host, path: u.pathname || "/" };
}
