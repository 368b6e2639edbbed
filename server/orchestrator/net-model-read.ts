/**
 * The machine's network as the renderers read it, on the Store (deploy planning: network-files.ts, agent-install.ts).
 * The async twin of server/netboot/load-net.ts loadNetModel (kept synchronous for the netboot tree and install files,
 * which are not on the Store): the same rows, the same schema, the same messages naming machine, row and field.
 * The two reads are hot statements (prepared once on SQLite: a 1,000-machine batch plans 1,000 networks).
 */
import { eq, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { machineNetworkSchema, type MachineNetwork, type NetInterfaceInput } from "../../lib/net-model";
import { hot } from "../db/hot";
import type { Store, StoreDb, StoreTx } from "../db/store";

type Q = StoreDb | StoreTx;

/** A JSON column read raw (text on SQLite, parsed jsonb on PostgreSQL), so a malformed value is a validation error. */
function jsonColumn(raw: unknown): unknown {
  if (raw == null) return null;
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** Legacy rows have no address_mode: static when an IPv4 address is set, else DHCP. */
function ipv4Of(mode: string | null, ip: string | null, prefix: number | null): Pick<NetInterfaceInput, "mode" | "ipv4"> {
  const m = mode ?? (ip ? "static" : "dhcp");
  const keeps = m === "static" || m === "auto";
  return { mode: m as NetInterfaceInput["mode"], ipv4: keeps && ip != null ? `${ip}/${prefix ?? 24}` : null };
}

function ipv6Of(mode: string | null, ip6: string | null, prefix6: number | null): Pick<NetInterfaceInput, "ipv6Mode" | "ipv6"> {
  return { ipv6Mode: (mode ?? "none") as NetInterfaceInput["ipv6Mode"], ipv6: ip6 != null ? `${ip6}/${prefix6 ?? 64}` : null };
}

function prepare(store: Store) {
  const machineId = sql.placeholder("machineId");
  return {
    nics: hot<NicRow[]>(store, "all", (db, { nics }) =>
      db
        .select({
          id: nics.id,
          ifname: nics.ifname,
          mac: nics.mac,
          ip: nics.ip,
          prefix: nics.prefix,
          gateway: nics.gateway,
          mtu: nics.mtu,
          addressMode: nics.addressMode,
          ipv6Mode: nics.ipv6Mode,
          ip6: nics.ip6,
          prefix6: nics.prefix6,
          gateway6: nics.gateway6,
          dns: nics.dns,
          subnetId: nics.subnetId,
          subnet6Id: nics.subnet6Id,
        })
        .from(nics)
        .where(eq(nics.machineId, machineId))
        .orderBy(nics.id),
    ),
    links: hot<LinkRow[]>(store, "all", (db, { nicLinks }) =>
      db
        .select({
          id: nicLinks.id,
          ifname: nicLinks.ifname,
          kind: nicLinks.kind,
          members: sql<unknown>`${nicLinks.members}`,
          bondMode: nicLinks.bondMode,
          miimon: nicLinks.miimon,
          lacpRate: nicLinks.lacpRate,
          xmitHashPolicy: nicLinks.xmitHashPolicy,
          parent: nicLinks.parent,
          vlanId: nicLinks.vlanId,
          ip: nicLinks.ip,
          prefix: nicLinks.prefix,
          gateway: nicLinks.gateway,
          mtu: nicLinks.mtu,
          addressMode: nicLinks.addressMode,
          ipv6Mode: nicLinks.ipv6Mode,
          ip6: nicLinks.ip6,
          prefix6: nicLinks.prefix6,
          gateway6: nicLinks.gateway6,
          dns: nicLinks.dns,
          subnetId: nicLinks.subnetId,
          subnet6Id: nicLinks.subnet6Id,
        })
        .from(nicLinks)
        .where(eq(nicLinks.machineId, machineId))
        .orderBy(nicLinks.id),
    ),
  };
}

interface Addr {
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
  dns: string | null;
  subnetId: number | null;
  subnet6Id: number | null;
}
type NicRow = Addr & { mac: string };
type LinkRow = Addr & {
  kind: string;
  members: unknown;
  bondMode: string | null;
  miimon: number | null;
  lacpRate: string | null;
  xmitHashPolicy: string | null;
  parent: string | null;
  vlanId: number | null;
};

const prepared = new WeakMap<Store, ReturnType<typeof prepare>>();
function queries(store: Store) {
  let q = prepared.get(store);
  if (!q) prepared.set(store, (q = prepare(store)));
  return q;
}

/**
 * The machine's network for its installed OS, validated (see load-net.ts loadNetModel), read through `q` (the
 * Store's db or the open transaction). @throws AppError VALIDATION naming the machine, the row and the field
 */
export async function loadNetModelIn(store: Store, q: Q, machineId: number, dns: string[], domain: string | null | undefined): Promise<MachineNetwork> {
  const { nics: nicsQ, links: linksQ } = queries(store);
  const nicRows = (await nicsQ(q, { machineId })).filter((n) => n.ifname != null && n.ifname !== "");
  const linkRows = await linksQ(q, { machineId });
  const members = new Set<string>();
  for (const l of linkRows) {
    const m = jsonColumn(l.members);
    if (l.kind === "bond" && Array.isArray(m)) for (const x of m) if (typeof x === "string") members.add(x);
  }
  const rowNames: string[] = [];
  const interfaces: unknown[] = [];
  for (const n of nicRows) {
    rowNames.push(`nics row ${n.id} (${JSON.stringify(String(n.ifname).slice(0, 40))})`);
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
      interfaces.push({ kind: l.kind, ...common, parent: l.parent, vlanId: l.vlanId });
    }
  }
  const parsed = machineNetworkSchema.safeParse({ interfaces, dns, search: domain ? [domain] : [] });
  if (parsed.success) return parsed.data;
  const { machines } = store.t;
  const [machine] = await q.select({ name: machines.name }).from(machines).where(eq(machines.id, machineId)).limit(1);
  const who = `machine ${machine ? JSON.stringify(machine.name) : "?"} (#${machineId})`;
  const details = parsed.error.issues.map((iss) => {
    const [head, idx, ...rest] = iss.path;
    const row = head === "interfaces" && typeof idx === "number" ? rowNames[idx] : `netboot settings ${String(idx ?? head ?? "")}`.trim();
    const field = rest.length ? rest.map(String).join(".") : head === "interfaces" ? "row" : String(head ?? "network");
    return { field: `${row} ${field}`, message: iss.message };
  });
  throw new AppError(
    "VALIDATION",
    `Network of ${who} cannot be rendered: ${details
      .slice(0, 5)
      .map((d) => `${d.field}: ${d.message}`)
      .join("; ")}${details.length > 5 ? ` (and ${details.length - 5} more)` : ""}`,
    details,
  );
}
