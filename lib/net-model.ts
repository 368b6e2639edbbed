/**
 * The machine network model: NICs, bonds and VLANs of one machine's installed OS, with IPv4 and IPv6 addressing.
 * ONE schema (`machineNetworkSchema`) for every boundary: the API and CSV import validate what operators send,
 * `loadNetModel` validates what it reads from the database, and every renderer (ifupdown, netplan, NetworkManager
 * keyfile, ifcfg, preseed, autoinstall, kickstart) parses its input with it again before writing a byte.
 * Every value that reaches a file is either an enum, a number, or text restricted to characters that mean nothing
 * in any of those formats (no whitespace, quotes, `\`, `$`, `;`, `&`, `#`, `=`, control characters, non-ASCII).
 * Isomorphic (forms and CSV preview use it too).
 */
import { z } from "zod";
import { isHostname, isIPv4, normalizeMac } from "./net";

/** The kernel's bonding modes (Documentation/networking/bonding.rst), by name only (not the numbers 0-6). */
export const BOND_MODES = ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"] as const;
export type BondMode = (typeof BOND_MODES)[number];
export const LACP_RATES = ["slow", "fast"] as const;
export const XMIT_HASH_POLICIES = ["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"] as const;
/** IPv4 addressing: auto = an address allocated from the NIC's subnet (static once allocated); none = no IPv4. */
export const ADDRESS_MODES = ["auto", "static", "dhcp", "none"] as const;
export type AddressMode = (typeof ADDRESS_MODES)[number];
/** IPv6 addressing: slaac = router advertisements (stateless autoconfiguration), dhcp = stateful DHCPv6. */
export const IPV6_MODES = ["auto", "static", "slaac", "dhcp", "none"] as const;
export type Ipv6Mode = (typeof IPV6_MODES)[number];

/**
 * Names the kernel refuses or that collide with files under /sys/class/net and /proc/sys/net/*\/conf: `lo` is the
 * loopback every system already configures (a second `iface lo` stanza breaks ifupdown).
 */
const RESERVED_IFNAMES = new Set(["lo", "all", "default", "bonding_masters"]);
/** Words that start a stanza or directive in /etc/network/interfaces: never an interface name. */
const IFUPDOWN_KEYWORDS = new Set(["auto", "iface", "mapping", "source", "source-directory", "rename", "inet", "inet6"]);

/**
 * A Linux interface name of an installed machine (the kernel's dev_valid_name: 1-15 bytes, no '/', ':' or
 * whitespace, not "." or ".."), further restricted to ASCII letters, digits, '.', '_' and '-' starting with a letter
 * or digit, and not `lo` or another reserved name.
 */
export const machineIfnameSchema = z
  .string()
  .max(15, "Interface names are at most 15 characters (Linux IFNAMSIZ)")
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, "Interface names are 1-15 letters, digits, '.', '_' or '-', starting with a letter or digit")
  .refine((s) => !RESERVED_IFNAMES.has(s), { error: (i) => `"${String(i.input)}" is reserved (lo is the loopback; all, default and bonding_masters are kernel names)` })
  .refine((s) => !IFUPDOWN_KEYWORDS.has(s), { error: (i) => `"${String(i.input)}" is a keyword of /etc/network/interfaces` })
  .refine((s) => !/^\d+$/.test(s), "An interface name must not be all digits");

/** RFC 4291 text form: 8 groups of 1-4 hex digits, one "::" at most, an optional dotted IPv4 tail; no zone. */
export function isIPv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(s)) return false;
  let head = s;
  let tailGroups = 0;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    head = s.slice(0, lastColon + 1) + "0";
    tailGroups = 1; // the IPv4 tail is two groups; "0" stands in for one
  }
  const halves = head.split("::");
  if (halves.length > 2) return false;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const all = halves.flatMap(groups);
  if (!all.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  const n = all.length + tailGroups;
  return halves.length === 2 ? n <= 7 : n === 8;
}

/** IPv6 address → 8 groups of 16 bits (for subnet checks). Assumes isIPv6. */
function ipv6Groups(s: string): number[] {
  let t = s;
  const lastColon = t.lastIndexOf(":");
  const tail = t.slice(lastColon + 1);
  if (tail.includes(".")) {
    const o = tail.split(".").map(Number);
    t = `${t.slice(0, lastColon + 1)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [a, b] = t.split("::");
  const left = a ? a.split(":") : [];
  const right = b ? b.split(":") : [];
  const mid = b === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...mid, ...right].map((g) => parseInt(g, 16));
}

function ipv4Number(s: string): number {
  return s.split(".").reduce((a, p) => a * 256 + Number(p), 0);
}

/** Whether two addresses of one family share their first `prefix` bits. */
export function sameSubnet(a: string, b: string, prefix: number): boolean {
  if (isIPv4(a) && isIPv4(b)) {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return ((ipv4Number(a) & mask) >>> 0) === ((ipv4Number(b) & mask) >>> 0);
  }
  if (isIPv6(a) && isIPv6(b)) {
    const x = ipv6Groups(a);
    const y = ipv6Groups(b);
    for (let bit = 0; bit < prefix; bit += 16) {
      const n = Math.min(16, prefix - bit);
      const mask = (0xffff << (16 - n)) & 0xffff;
      if ((x[bit / 16]! & mask) !== (y[bit / 16]! & mask)) return false;
    }
    return true;
  }
  return false;
}

export const ipv4AddressSchema = z.string().refine(isIPv4, { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not an IPv4 address` });
export const ipv6AddressSchema = z
  .string()
  .refine(isIPv6, { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not an IPv6 address` })
  .transform((s) => s.toLowerCase());
export const ipAddressSchema = z
  .string()
  .refine((s) => isIPv4(s) || isIPv6(s), { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not an IPv4 or IPv6 address` })
  .transform((s) => s.toLowerCase());

/** "10.0.0.5/24": an IPv4 host address with its prefix length (1-32). */
export const cidr4Schema = z.string().refine(
  (s) => {
    const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
    return !!m && isIPv4(m[1]!) && Number(m[2]) >= 1 && Number(m[2]) <= 32;
  },
  { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not an IPv4 address with a prefix, like 10.0.0.5/24` },
);
/** "2001:db8::5/64": an IPv6 host address with its prefix length (1-128). */
export const cidr6Schema = z
  .string()
  .refine(
    (s) => {
      const m = /^([0-9A-Fa-f:.]+)\/([0-9]{1,3})$/.exec(s);
      return !!m && isIPv6(m[1]!) && Number(m[2]) >= 1 && Number(m[2]) <= 128;
    },
    { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not an IPv6 address with a prefix, like 2001:db8::5/64` },
  )
  .transform((s) => s.toLowerCase());

/** "10.0.0.5/24" → { address: "10.0.0.5", prefix: 24 } (input already validated). */
export function splitCidr(cidr: string): { address: string; prefix: number } {
  const i = cidr.lastIndexOf("/");
  return { address: cidr.slice(0, i), prefix: Number(cidr.slice(i + 1)) };
}

/** 68 is the IPv4 minimum (RFC 791), 9216 the largest jumbo frame common switches carry. IPv6 needs 1280. */
export const netMtuSchema = z.number().int().min(68, "MTU is at least 68").max(9216, "MTU is at most 9216");
export const macAddressSchema = z.string().transform((s, ctx) => {
  const m = normalizeMac(s);
  if (!m) {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(s.slice(0, 40))} is not a MAC address` });
    return z.NEVER;
  }
  return m;
});
export const vlanIdSchema = z.number().int().min(1, "VLAN id is 1-4094").max(4094, "VLAN id is 1-4094");
/** Bond link monitoring interval in ms; 0 switches MII monitoring off. */
export const miimonSchema = z.number().int().min(0).max(60000);

/** Addressing shared by NICs, bonds and VLANs. */
const addressing = {
  /** The subnet (server/subnets) an "auto" IPv4 address is allocated from, or a "static" one is pinned in. */
  subnetId: z.number().int().positive().nullish(),
  /** The same for IPv6 (ipv6Mode auto or static). */
  subnet6Id: z.number().int().positive().nullish(),
  mode: z.enum(ADDRESS_MODES, { error: `Address mode is one of ${ADDRESS_MODES.join(", ")}` }).default("dhcp"),
  /** Static or allocated IPv4 address with its prefix, e.g. 10.0.0.5/24. */
  ipv4: cidr4Schema.nullish(),
  gateway4: ipv4AddressSchema.nullish(),
  ipv6Mode: z.enum(IPV6_MODES, { error: `IPv6 mode is one of ${IPV6_MODES.join(", ")}` }).default("none"),
  /** Static or allocated IPv6 address with its prefix, e.g. 2001:db8::5/64. */
  ipv6: cidr6Schema.nullish(),
  gateway6: ipv6AddressSchema.nullish(),
  /** DNS servers of this interface (IPv4 or IPv6); empty: the network's (top-level `dns`). */
  dns: z.array(ipAddressSchema).max(8, "At most 8 DNS servers").default([]),
  mtu: netMtuSchema.nullish(),
};

export const nicSchema = z.object({ kind: z.literal("ethernet"), name: machineIfnameSchema, mac: macAddressSchema.nullish(), ...addressing });
export const bondSchema = z.object({
  kind: z.literal("bond"),
  name: machineIfnameSchema,
  members: z.array(machineIfnameSchema).min(1, "A bond needs at least one member").max(16, "At most 16 members"),
  bondMode: z.enum(BOND_MODES, { error: `Bond mode is one of ${BOND_MODES.join(", ")}` }).default("active-backup"),
  miimon: miimonSchema.default(100),
  lacpRate: z.enum(LACP_RATES, { error: "LACP rate is slow or fast" }).nullish(),
  xmitHashPolicy: z.enum(XMIT_HASH_POLICIES, { error: `Transmit hash policy is one of ${XMIT_HASH_POLICIES.join(", ")}` }).nullish(),
  ...addressing,
});
export const vlanSchema = z.object({ kind: z.literal("vlan"), name: machineIfnameSchema, parent: machineIfnameSchema, vlanId: vlanIdSchema, ...addressing });
export const netInterfaceSchema = z.discriminatedUnion("kind", [nicSchema, bondSchema, vlanSchema]);

const domainListSchema = z
  .array(z.string().refine(isHostname, { error: (i) => `${JSON.stringify(String(i.input).slice(0, 60))} is not a DNS domain` }))
  .max(6, "At most 6 search domains");

type Iface = z.output<typeof netInterfaceSchema>;

/** Cross-field and cross-interface rules; issues carry the path of the offending field. */
function checkNetwork(net: { interfaces: Iface[] }, ctx: z.RefinementCtx): void {
  const issue = (i: number, field: string, message: string) => ctx.addIssue({ code: "custom", path: ["interfaces", i, field], message });
  const byName = new Map<string, { i: number; it: Iface }>();
  net.interfaces.forEach((it, i) => {
    if (byName.has(it.name)) issue(i, "name", `Interface name ${it.name} is used twice`);
    else byName.set(it.name, { i, it });
  });
  const macs = new Map<string, string>();
  const masterOf = new Map<string, string>();
  const vlanKeys = new Set<string>();
  net.interfaces.forEach((it, i) => {
    if (it.kind === "ethernet" && it.mac) {
      const other = macs.get(it.mac);
      if (other) issue(i, "mac", `MAC ${it.mac} is already ${other}'s`);
      else macs.set(it.mac, it.name);
    }
    if (it.kind === "bond") {
      if (new Set(it.members).size !== it.members.length) issue(i, "members", `Bond ${it.name} lists a member twice`);
      for (const m of it.members) {
        const target = byName.get(m)?.it;
        if (!target) issue(i, "members", `Bond ${it.name}: member ${m} is not a NIC of this machine`);
        else if (target.kind !== "ethernet") issue(i, "members", `Bond ${it.name}: member ${m} is a ${target.kind}, not a NIC`);
        else if (masterOf.has(m) && masterOf.get(m) !== it.name) issue(i, "members", `Bond ${it.name}: ${m} is already a member of ${masterOf.get(m)}`);
        else masterOf.set(m, it.name);
      }
      if ((it.lacpRate ?? null) !== null && it.bondMode !== "802.3ad") issue(i, "lacpRate", `LACP rate applies to mode 802.3ad only (bond ${it.name} is ${it.bondMode})`);
      if ((it.xmitHashPolicy ?? null) !== null && !["balance-xor", "802.3ad", "balance-tlb", "balance-alb"].includes(it.bondMode)) {
        issue(i, "xmitHashPolicy", `Transmit hash policy applies to balance-xor, 802.3ad, balance-tlb and balance-alb (bond ${it.name} is ${it.bondMode})`);
      }
    }
    if (it.kind === "vlan") {
      const parent = byName.get(it.parent)?.it;
      if (!parent) issue(i, "parent", `VLAN ${it.name}: parent ${it.parent} is not an interface of this machine`);
      else if (parent.kind === "vlan") issue(i, "parent", `VLAN ${it.name}: parent ${it.parent} is itself a VLAN`);
      else {
        const key = `${it.parent}/${it.vlanId}`;
        if (vlanKeys.has(key)) issue(i, "vlanId", `VLAN ${it.vlanId} is on ${it.parent} twice`);
        vlanKeys.add(key);
        if (it.mtu && it.mtu > (parent.mtu ?? 1500)) issue(i, "mtu", `VLAN ${it.name}: MTU ${it.mtu} is larger than its parent ${it.parent}'s (${parent.mtu ?? 1500})`);
      }
    }
  });
  net.interfaces.forEach((it, i) => {
    const master = masterOf.get(it.name);
    if (master) {
      if (it.mode !== "none" || it.ipv6Mode !== "none" || it.ipv4 || it.ipv6 || it.gateway4 || it.gateway6) {
        issue(i, "mode", `${it.name} is a member of bond ${master}: its addressing belongs on the bond (set the NIC's modes to none)`);
      }
      if (net.interfaces.some((v) => v.kind === "vlan" && v.parent === it.name)) issue(i, "name", `${it.name} is a member of bond ${master}: put VLANs on the bond`);
      return;
    }
    if (it.mode === "static" && !it.ipv4) issue(i, "ipv4", `${it.name}: a static IPv4 address mode needs an address`);
    if ((it.mode === "dhcp" || it.mode === "none") && it.ipv4) issue(i, "ipv4", `${it.name}: an address is given but the IPv4 mode is ${it.mode}`);
    if (it.gateway4) {
      const a = it.ipv4 ? splitCidr(it.ipv4) : null;
      if (!a) issue(i, "gateway4", `${it.name}: an IPv4 gateway needs a static or allocated IPv4 address`);
      else if (a.address === it.gateway4) issue(i, "gateway4", `${it.name}: the gateway is the interface's own address`);
      else if (!sameSubnet(a.address, it.gateway4, a.prefix)) issue(i, "gateway4", `${it.name}: gateway ${it.gateway4} is not in ${it.ipv4}`);
    }
    if (it.ipv6Mode === "static" && !it.ipv6) issue(i, "ipv6", `${it.name}: a static IPv6 mode needs an address`);
    if ((it.ipv6Mode === "slaac" || it.ipv6Mode === "dhcp" || it.ipv6Mode === "none") && it.ipv6) issue(i, "ipv6", `${it.name}: an IPv6 address is given but the IPv6 mode is ${it.ipv6Mode}`);
    if (it.gateway6) {
      const a = it.ipv6 ? splitCidr(it.ipv6) : null;
      const linkLocal = /^fe[89ab]/i.test(it.gateway6);
      if (!a) issue(i, "gateway6", `${it.name}: an IPv6 gateway needs a static or allocated IPv6 address`);
      else if (a.address === it.gateway6) issue(i, "gateway6", `${it.name}: the gateway is the interface's own address`);
      else if (!linkLocal && !sameSubnet(a.address, it.gateway6, a.prefix)) issue(i, "gateway6", `${it.name}: gateway ${it.gateway6} is neither link-local nor in ${it.ipv6}`);
    }
    if (it.mtu && it.mtu < 1280 && it.ipv6Mode !== "none") issue(i, "mtu", `${it.name}: IPv6 needs an MTU of at least 1280`);
  });
}

/**
 * A machine's network: its interfaces (NICs, bonds, VLANs) plus the DNS servers and search domains used where an
 * interface names none. The output adds `master` (the bond a NIC belongs to, else null) for the renderers.
 */
export const machineNetworkSchema = z
  .object({
    interfaces: z.array(netInterfaceSchema).max(64, "At most 64 interfaces"),
    dns: z.array(ipAddressSchema).max(8, "At most 8 DNS servers").default([]),
    search: domainListSchema.default([]),
  })
  .superRefine(checkNetwork)
  .transform((net) => {
    const masterOf = new Map<string, string>();
    for (const it of net.interfaces) if (it.kind === "bond") for (const m of it.members) masterOf.set(m, it.name);
    return { ...net, interfaces: net.interfaces.map((it) => ({ ...it, master: masterOf.get(it.name) ?? null })) };
  });

export type MachineNetworkInput = z.input<typeof machineNetworkSchema>;
export type MachineNetwork = z.output<typeof machineNetworkSchema>;
export type NetIface = MachineNetwork["interfaces"][number];
export type NetInterfaceInput = z.input<typeof netInterfaceSchema>;

/** "interfaces.2.gateway4: gateway … is not in …" lines for an error message. */
export function formatNetworkIssues(error: z.ZodError, name?: (index: number) => string): string {
  return error.issues
    .map((iss) => {
      const [head, idx, ...rest] = iss.path;
      const where = head === "interfaces" && typeof idx === "number" ? `${name ? name(idx) : `interface ${idx + 1}`}${rest.length ? ` field ${rest.join(".")}` : ""}` : iss.path.join(".") || "network";
      return `${where}: ${iss.message}`;
    })
    .join("; ");
}
