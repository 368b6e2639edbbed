/**
 * The machine's network as the renderers read it, on the Store (deploy planning: network-files.ts, agent-install.ts;
 * the netboot install files).
 * The rows are turned into the model by server/netboot/load-net.ts `netModelFromRows` (shared with its synchronous
 * `loadNetModel`): the same schema, the same messages naming machine, row and field.
 * The two reads are hot statements (prepared once on SQLite: a 1,000-machine batch plans 1,000 networks).
 */
import { eq, sql } from "drizzle-orm";
import type { MachineNetwork } from "../../lib/net-model";
import { isNetModelIssues, netModelError, netModelFromRows, type LinkNetRow, type NicNetRow } from "../netboot/load-net";
import { hot } from "../db/hot";
import type { Store, StoreDb, StoreTx } from "../db/store";

type Q = StoreDb | StoreTx;

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

type NicRow = NicNetRow;
type LinkRow = LinkNetRow;

const prepared = new WeakMap<Store, ReturnType<typeof prepare>>();
function queries(store: Store) {
  let q = prepared.get(store);
  if (!q) prepared.set(store, (q = prepare(store)));
  return q;
}

/**
 * The machine's network for its installed OS, validated (load-net.ts netModelFromRows), read through `q` (the
 * Store's db or the open transaction). @throws AppError VALIDATION naming the machine, the row and the field
 */
export async function loadNetModelIn(store: Store, q: Q, machineId: number, dns: string[], domain: string | null | undefined): Promise<MachineNetwork> {
  const { nics: nicsQ, links: linksQ } = queries(store);
  const r = netModelFromRows(await nicsQ(q, { machineId }), await linksQ(q, { machineId }), dns, domain);
  if (!isNetModelIssues(r)) return r;
  const { machines } = store.t;
  const [machine] = await q.select({ name: machines.name }).from(machines).where(eq(machines.id, machineId)).limit(1);
  throw netModelError(machineId, machine?.name, r);
}
