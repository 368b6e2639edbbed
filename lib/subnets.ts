/**
 * Subnets (issue 14): the networks addresses are allocated from. IPv4 and IPv6 addresses are handled as BigInt
 * (an IPv6 /64 is 2^64 addresses: never enumerated, only stepped over what is taken). Isomorphic: the subnet form
 * validates with the same schema the API does.
 */
import { z } from "zod";
import { isIPv4 } from "./net";
import { isIPv6 } from "./net-model";

export type Family = 4 | 6;
export interface Addr {
  family: Family;
  n: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** "10.0.0.5" / "2001:db8::5" → family and number; null when not an address. */
export function parseAddr(s: string): Addr | null {
  if (isIPv4(s)) return { family: 4, n: s.split(".").reduce((a, p) => (a << 8n) | BigInt(Number(p)), 0n) };
  if (!isIPv6(s)) return null;
  let t = s.toLowerCase();
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
  return { family: 6, n: [...left, ...mid, ...right].reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** The canonical text form: dotted quad, or RFC 5952 IPv6 (lower case, longest run of ≥ 2 zero groups as "::"). */
export function formatAddr(a: Addr): string {
  if (a.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((a.n >> s) & 255n)).join(".");
  const g = Array.from({ length: 8 }, (_, i) => Number((a.n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** Canonical form of an address text, or null. */
export function canonicalAddr(s: string): string | null {
  const a = parseAddr(s);
  return a ? formatAddr(a) : null;
}

/** A sortable key: 32 hex digits (IPv4 and IPv6 sort apart by family anyway, since a subnet has one family). */
export function addrKey(n: bigint): string {
  return n.toString(16).padStart(32, "0");
}

export interface Cidr {
  family: Family;
  /** The network address (host bits zero). */
  network: bigint;
  prefix: number;
}

export function cidrLast(c: Cidr): bigint {
  return c.network | ((1n << BigInt(BITS[c.family] - c.prefix)) - 1n);
}

/** The number of addresses in the subnet (2^host bits). */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(BITS[c.family] - c.prefix);
}

export function inCidr(c: Cidr, a: Addr): boolean {
  return a.family === c.family && a.n >= c.network && a.n <= cidrLast(c);
}

/** "10.0.0.0/24" → Cidr; null unless a network address with a prefix (host bits must be zero). */
export function parseCidr(s: string): Cidr | null {
  const m = /^([0-9A-Fa-f:.]{2,45})\/([0-9]{1,3})$/.exec(s);
  if (!m) return null;
  const a = parseAddr(m[1]!);
  const prefix = Number(m[2]);
  if (!a || prefix > BITS[a.family]) return null;
  const hostMask = (1n << BigInt(BITS[a.family] - prefix)) - 1n;
  if (a.n & hostMask) return null;
  return { family: a.family, network: a.n, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddr({ family: c.family, n: c.network })}/${c.prefix}`;
}

/** The host addresses: IPv4 leaves out the network and broadcast address (except /31 and /32); IPv6 the subnet-router anycast (::). */
export function hostBounds(c: Cidr): { first: bigint; last: bigint } {
  const last = cidrLast(c);
  if (c.family === 4) return c.prefix >= 31 ? { first: c.network, last } : { first: c.network + 1n, last: last - 1n };
  return { first: c.prefix >= 127 ? c.network : c.network + 1n, last };
}

export interface Range {
  start: bigint;
  end: bigint;
}

const quote = (v: unknown) => JSON.stringify(String(v).slice(0, 60));

const addrText = z
  .string()
  .max(45, "An address is at most 45 characters")
  .refine((s) => parseAddr(s) !== null, { error: (i) => `${quote(i.input)} is not an IPv4 or IPv6 address` })
  .transform((s) => canonicalAddr(s)!);

export const rangeSchema = z.object({ start: addrText, end: addrText });

/** Subnet names appear in URLs, CSV cells and files: conservative. */
export const subnetNameSchema = z
  .string()
  .trim()
  .min(1, "Name is required")
  .max(64, "At most 64 characters")
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "Use letters, digits, '.', '_' and '-' (start with a letter or digit)")
  .refine((s) => s !== "." && s !== ".." && !s.includes(".."), "Must not contain ..");

const subnetFields = {
  name: subnetNameSchema,
  /** Network address with prefix, e.g. 10.0.0.0/24 or 2001:db8:1::/64. */
  cidr: z
    .string()
    .trim()
    .max(49, "At most 49 characters")
    .refine((s) => parseCidr(s) !== null, {
      error: (i) => `${quote(i.input)} is not a network with a prefix (host bits zero), like 10.0.0.0/24 or 2001:db8::/64`,
    })
    .transform((s) => formatCidr(parseCidr(s)!)),
  gateway: addrText.nullish(),
  dns: z.array(addrText).max(8, "At most 8 DNS servers").default([]),
  vlanId: z.number().int().min(1, "VLAN id is 1-4094").max(4094, "VLAN id is 1-4094").nullish(),
  reserved: z.array(rangeSchema).max(64, "At most 64 reserved ranges").default([]),
  dynamic: rangeSchema.nullish(),
  provisioning: z.boolean().default(false),
};

/** Every range and address in the subnet, ranges in order, reserved and gateway outside the dynamic range. */
function checkSubnet(s: { cidr: string; gateway?: string | null; dns: string[]; reserved: { start: string; end: string }[]; dynamic?: { start: string; end: string } | null; provisioning: boolean }, ctx: z.RefinementCtx): void {
  const c = typeof s.cidr === "string" ? parseCidr(s.cidr) : null;
  if (!c) return;
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  if (c.family === 4 && c.prefix < 8) issue(["cidr"], "An IPv4 subnet is at most a /8");
  if (c.family === 6 && c.prefix < 32) issue(["cidr"], "An IPv6 subnet is at most a /32");
  // Zod runs this even when a field failed its own check: anything unparsable was reported already and is skipped.
  const check = (path: (string | number)[], v: unknown) => {
    const a = typeof v === "string" ? parseAddr(v) : null;
    if (a && !inCidr(c, a)) issue(path, `${v as string} is not in ${s.cidr}`);
    return a;
  };
  const ranges = (path: (string | number)[], r: { start: string; end: string } | undefined) => {
    if (!r) return null;
    const a = check([...path, "start"], r.start);
    const b = check([...path, "end"], r.end);
    if (!a || !b) return null;
    if (a.family === b.family && a.n > b.n) issue([...path, "end"], `Range end ${r.end} is before its start ${r.start}`);
    return { start: a.n, end: b.n };
  };
  const g = s.gateway ? check(["gateway"], s.gateway) : null;
  const dyn = s.dynamic ? ranges(["dynamic"], s.dynamic) : null;
  const res = Array.isArray(s.reserved) ? s.reserved.map((r, i) => ranges(["reserved", i], r)) : [];
  if (dyn) {
    res.forEach((r, i) => {
      if (r && r.start <= dyn.end && dyn.start <= r.end) issue(["reserved", i], `Reserved range ${s.reserved[i]!.start}-${s.reserved[i]!.end} overlaps the dynamic range`);
    });
    if (g && g.n >= dyn.start && g.n <= dyn.end) issue(["gateway"], "The gateway is inside the dynamic range");
  }
  if (s.provisioning && c.family !== 4) issue(["provisioning"], "The provisioning subnet is IPv4 (dnsmasq hands out its dynamic range)");
  if (s.provisioning && !s.dynamic) issue(["dynamic"], "The provisioning subnet needs a dynamic range (dnsmasq's DHCP range)");
}

export const subnetCreateSchema = z.object(subnetFields).superRefine(checkSubnet);
export const subnetUpdateSchema = z.object({ id: z.number().int().positive(), ...subnetFields }).superRefine(checkSubnet);
export type SubnetCreate = z.output<typeof subnetCreateSchema>;
export type SubnetInput = z.input<typeof subnetCreateSchema>;

/** What allocation needs of a subnet, parsed once. */
export interface SubnetPlan {
  id: number;
  name: string;
  cidr: Cidr;
  gateway: bigint | null;
  /** Reserved and dynamic ranges plus the gateway, sorted by start and merged: never handed out automatically. */
  excluded: Range[];
  dynamic: Range | null;
  reserved: Range[];
}

export function subnetPlan(s: { id: number; name: string; cidr: string; gateway: string | null; reserved: { start: string; end: string }[]; dynamic: { start: string; end: string } | null }): SubnetPlan {
  const cidr = parseCidr(s.cidr);
  if (!cidr) throw new Error(`subnet ${s.name}: bad CIDR ${s.cidr}`);
  const r = (x: { start: string; end: string }): Range => ({ start: parseAddr(x.start)!.n, end: parseAddr(x.end)!.n });
  const reserved = s.reserved.map(r);
  const dynamic = s.dynamic ? r(s.dynamic) : null;
  const gateway = s.gateway ? parseAddr(s.gateway)!.n : null;
  const all = [...reserved, ...(dynamic ? [dynamic] : []), ...(gateway !== null ? [{ start: gateway, end: gateway }] : [])].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const excluded: Range[] = [];
  for (const x of all) {
    const last = excluded[excluded.length - 1];
    if (last && x.start <= last.end + 1n) {
      if (x.end > last.end) last.end = x.end;
    } else excluded.push({ ...x });
  }
  return { id: s.id, name: s.name, cidr, gateway, excluded, dynamic, reserved };
}

/** Why an address cannot be pinned in this subnet (outside, network/broadcast, gateway, reserved, dynamic), or null. */
export function pinProblem(p: SubnetPlan, address: string): string | null {
  const a = parseAddr(address);
  if (!a || a.family !== p.cidr.family) return `${quote(address)} is not an IPv${p.cidr.family} address`;
  if (!inCidr(p.cidr, a)) return `${address} is not in subnet ${p.name} (${formatCidr(p.cidr)})`;
  const { first, last } = hostBounds(p.cidr);
  if (a.n < first || a.n > last) return `${address} is the network or broadcast address of ${p.name}`;
  if (p.gateway === a.n) return `${address} is the gateway of ${p.name}`;
  if (p.dynamic && a.n >= p.dynamic.start && a.n <= p.dynamic.end) return `${address} is in the dynamic range of ${p.name}`;
  if (p.reserved.some((r) => a.n >= r.start && a.n <= r.end)) return `${address} is in a reserved range of ${p.name}`;
  return null;
}

/**
 * The first host address at or after `from` that is neither excluded nor in `taken`, or null when the subnet is
 * full. Steps over excluded ranges in one jump and over taken addresses one by one: at most |taken| + |excluded|
 * steps, whatever the subnet's size.
 */
export function firstFree(p: SubnetPlan, taken: ReadonlySet<bigint>, from?: bigint): bigint | null {
  const { first, last } = hostBounds(p.cidr);
  let n = from !== undefined && from > first ? from : first;
  let i = 0;
  for (;;) {
    if (n > last) return null;
    while (i < p.excluded.length && p.excluded[i]!.end < n) i++;
    const ex = p.excluded[i];
    if (ex && ex.start <= n) {
      n = ex.end + 1n;
      continue;
    }
    if (taken.has(n)) {
      n++;
      continue;
    }
    return n;
  }
}

/** How many addresses the subnet can hand out automatically (hosts minus excluded within the host bounds). */
export function assignableCount(p: SubnetPlan): bigint {
  const { first, last } = hostBounds(p.cidr);
  if (last < first) return 0n;
  let n = last - first + 1n;
  for (const r of p.excluded) {
    const a = r.start > first ? r.start : first;
    const b = r.end < last ? r.end : last;
    if (b >= a) n -= b - a + 1n;
  }
  return n;
}
