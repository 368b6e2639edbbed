import { AppError } from "../../lib/errors";
import { profileOptionsSchema, type NetConfigFormat } from "../../lib/netboot";
import type { OsProfile } from "../db/schema";
import type { Store, StoreDb, StoreTx } from "../db/store";
import type { NetbootSettings } from "../../lib/netboot";
import { NET_RENDERERS } from "../netboot/templates/net-config";
import { loadNetModelIn } from "./net-model-read";

/** Where each format's files live in the installed system, and their modes (NetworkManager refuses world-readable keyfiles). */
const PLACES: Record<NetConfigFormat, { dir: string; mode: number }> = {
  ifupdown: { dir: "etc/network", mode: 0o644 },
  netplan: { dir: "etc/netplan", mode: 0o600 },
  "nm-keyfile": { dir: "etc/NetworkManager/system-connections", mode: 0o600 },
  ifcfg: { dir: "etc/sysconfig/network-scripts", mode: 0o644 },
};
const FAMILY_DEFAULT: Record<string, NetConfigFormat> = { debian: "ifupdown", ubuntu: "netplan", rhel: "nm-keyfile" };

/**
 * Validate the machine's network as the renderers will read it (loadNetModel).
 * @throws AppError VALIDATION naming the machine, the row and the field
 */
export async function checkNetwork(store: Store, q: StoreDb | StoreTx, machineId: number, settings: NetbootSettings): Promise<void> {
  await loadNetModelIn(store, q, machineId, settings.dnsServers, settings.domain);
}

export interface NetworkParams {
  rootPartition: string | null;
  networkFiles: { path: string; content: string; mode: number }[];
}

/**
 * The configure_network step's inputs for an image deploy: the machine's NICs (those with an interface name, plus
 * bonds and VLANs) rendered for the profile's OS family by the netboot renderers, and where to write them.
 * No named NICs: nothing to write (the image keeps DHCP).
 * @throws AppError VALIDATION when there is configuration to write but the profile names no root partition
 */
export async function networkParams(store: Store, q: StoreDb | StoreTx, machineId: number, profile: OsProfile, settings: NetbootSettings): Promise<NetworkParams> {
  const opts = profileOptionsSchema.parse(profile.options ?? {});
  const format = opts.netConfig ?? (profile.osFamily ? FAMILY_DEFAULT[profile.osFamily] : undefined);
  const net = await loadNetModelIn(store, q, machineId, settings.dnsServers, settings.domain);
  if (!format || net.interfaces.length === 0) return { rootPartition: opts.rootPartition ?? null, networkFiles: [] };
  if (!opts.rootPartition) {
    throw new AppError(
      "VALIDATION",
      `OS profile ${profile.name}: the machine has static network configuration to write, but the profile names no root partition`,
    );
  }
  const place = PLACES[format];
  const networkFiles = NET_RENDERERS[format](net).map((f) => ({ path: `/${place.dir}/${f.path}`, content: f.content, mode: place.mode }));
  return { rootPartition: opts.rootPartition, networkFiles };
}
