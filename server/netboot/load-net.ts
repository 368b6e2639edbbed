/**
 * A machine's network (its named NICs, bonds and VLANs) from its rows, validated with the one machine network schema
 * (lib/net-model.ts) before anything is rendered: a bad row (a bond mode with spaces, `lo` as an interface name, a
 * newline in an address) is refused with the machine, the row and the field named. `netModelFromRows` is the pure
 * part; the reader is the Store's `loadNetModelIn` (server/orchestrator/net-model-read.ts: deploy planning, install
 * files, the network editor).
 */
import { AppError } from "../../lib/errors";
import { machineNetworkSchema, type MachineNetwork, type NetInterfaceInput } from "../../lib/net-model";

/** A JSON text column read raw, so a malformed value is a validation error here, not a crash in the driver. */
function jsonColumn(raw: unknown): unknown {
  if (raw == null) return null;
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw; // not JSON: the schema refuses the raw text (it is not an array)
  }
}

/** Legacy rows have no address_mode: static when an IPv4 address is set, else DHCP. */
function ipv4Of(mode: string | null, ip: string | null, prefix: number | null): Pick<NetInterfaceInput, "mode" | "ipv4"> {
  const m = mode ?? (ip ? "static" : "dhcp");
  // With "dhcp" (or "none") a NIC's ip is its DHCP reservation on the provisioning network, not an installed address.
  const keeps = m === "static" || m === "auto";
  return { mode: m as NetInterfaceInput["mode"], ipv4: keeps && ip != null ? `${ip}/${prefix ?? 24}` : null };
}

function ipv6Of(mode: string | null, ip6: string | null, prefix6: number | null): Pick<NetInterfaceInput, "ipv6Mode" | "ipv6"> {
  return { ipv6Mode: (mode ?? "none") as NetInterfaceInput["ipv6Mode"], ipv6: ip6 != null ? `${ip6}/${prefix6 ?? 64}` : null };
}

/** Addressing columns of a `nics` or `nic_links` row, as both readers select them. */
export interface NetAddrRow {
  id: number;
  ifname: string | null;
  ip: string | null;
  prefix: number | null;
  gateway: string | null;
  mtu: number | null;
  addressMode: string | null;
  ipv6Mode: string | null;
  ip6: string | null;
  prefix6: number | null;
  gateway6: string | null;
  /** JSON: text on SQLite, parsed on PostgreSQL. */
  dns: unknown;
  subnetId: number | null;
  subnet6Id: number | null;
}
export type NicNetRow = NetAddrRow & { mac: string };
export type LinkNetRow = NetAddrRow & {
  kind: string;
  members: unknown;
  bondMode: string | null;
  miimon: number | null;
  lacpRate: string | null;
  xmitHashPolicy: string | null;
  parent: string | null;
  vlanId: number | null;
};

/** What made a machine's rows unrenderable: the schema's issues, each naming its row and field. */
export interface NetModelIssues {
  details: { field: string; message: string }[];
}

/**
 * The machine's network for its installed OS from its NIC rows (in id order; those without an interface name are not
 * configured) and link rows, validated. `dns` and `domain` are the provisioning network's (netboot settings), used
 * where an interface names no DNS. Pure: the caller turns issues into an error with `netModelError`.
 */
export function netModelFromRows(nicRows: readonly NicNetRow[], linkRows: readonly LinkNetRow[], dns: string[], domain: string | null | undefined): MachineNetwork | NetModelIssues {
  const named = nicRows.filter((n) => n.ifname != null && n.ifname !== "");
  const members = new Set<string>();
  for (const l of linkRows) {
    const m = jsonColumn(l.members);
    if (l.kind === "bond" && Array.isArray(m)) for (const x of m) if (typeof x === "string") members.add(x);
  }
  const rowNames: string[] = [];
  const interfaces: unknown[] = [];
  for (const n of named) {
    rowNames.push(`nics row ${n.id} (${JSON.stringify(String(n.ifname).slice(0, 40))})`);
    // A bond member's addresses live on the bond; its ip is only the provisioning DHCP reservation.
    const member = members.has(n.ifname!);
    interfaces.push({
      kind: "ethernet",
      name: n.ifname,
      mac: n.mac,
      ...(member ? { mode: "none", ipv4: null, ipv6Mode: "none", ipv6: null } : { ...ipv4Of(n.addressMode, n.ip, n.prefix), ...ipv6Of(n.ipv6Mode, n.ip6, n.prefix6) }),
      gateway4: member ? null : n.gateway,
      gateway6: member ? null : n.gateway6,
      dns: jsonColumn(n.dns) ?? [],
      mtu: n.mtu,
      subnetId: member ? null : n.subnetId,
      subnet6Id: member ? null : n.subnet6Id,
    });
  }
  for (const l of linkRows) {
    rowNames.push(`nic_links row ${l.id} (${JSON.stringify(String(l.ifname).slice(0, 40))})`);
    const common = {
      name: l.ifname,
      ...ipv4Of(l.addressMode, l.ip, l.prefix),
      gateway4: l.gateway,
      ...ipv6Of(l.ipv6Mode, l.ip6, l.prefix6),
      gateway6: l.gateway6,
      dns: jsonColumn(l.dns) ?? [],
      mtu: l.mtu,
      subnetId: l.subnetId,
      subnet6Id: l.subnet6Id,
    };
    if (l.kind === "bond") {
      interfaces.push({
        kind: "bond",
        ...common,
        members: jsonColumn(l.members) ?? [],
        bondMode: l.bondMode ?? undefined,
        miimon: l.miimon ?? undefined,
        lacpRate: l.lacpRate,
        xmitHashPolicy: l.xmitHashPolicy,
      });
    } else {
      // Any other kind is refused by the schema's discriminator, naming this row.
      interfaces.push({ kind: l.kind, ...common, parent: l.parent, vlanId: l.vlanId });
    }
  }
  const parsed = machineNetworkSchema.safeParse({ interfaces, dns, search: domain ? [domain] : [] });
  if (parsed.success) return parsed.data;
  return {
    details: parsed.error.issues.map((iss) => {
      const [head, idx, ...rest] = iss.path;
      const row = head === "interfaces" && typeof idx === "number" ? rowNames[idx] : `netboot settings ${String(idx ?? head ?? "")}`.trim();
      const field = rest.length ? rest.map(String).join(".") : head === "interfaces" ? "row" : String(head ?? "network");
      return { field: `${row} ${field}`, message: iss.message };
    }),
  };
}

export function isNetModelIssues(r: MachineNetwork | NetModelIssues): r is NetModelIssues {
  return "details" in r;
}

/** The VALIDATION error of a machine whose network cannot be rendered (`name` undefined: the machine is gone). */
export function netModelError(machineId: number, name: string | undefined, issues: NetModelIssues): AppError {
  const { details } = issues;
  const who = `machine ${name !== undefined ? JSON.stringify(name) : "?"} (#${machineId})`;
  return new AppError(
    "VALIDATION",
    `Network of ${who} cannot be rendered: ${details
      .slice(0, 5)
      .map((d) => `${d.field}: ${d.message}`)
      .join("; ")}${details.length > 5 ? ` (and ${details.length - 5} more)` : ""}`,
    details,
  );
}
