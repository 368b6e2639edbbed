/** Provisioning network settings, stored as JSON in `settings` under the key "netboot". */
import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { formatIssues } from "../../lib/schemas";
import { netbootSettingsSchema, type NetbootSettings, type NetbootSettingsInput } from "../../lib/netboot";
import type { Actor, Domain } from "../context";
import { storeOf, type Store, type StoreDb, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { parseAddr, parseCidr, inCidr } from "../../lib/subnets";
import type { Subnet } from "../db/schema";

const KEY = "netboot";

/**
 * Stored settings, or the defaults (mode off) when none were saved; a stored value that no longer parses is
 * reported. Either database, through `q`: the Store's db or an open transaction. */
export async function loadNetbootSettings(store: Store, q: StoreDb | StoreTx = store.db): Promise<NetbootSettings> {
  const { settings: t } = store.t;
  const [row] = await q.select({ value: t.value }).from(t).where(eq(t.key, KEY)).limit(1);
  return parseNetbootSettings(row?.value);
}

function parseNetbootSettings(value: unknown): NetbootSettings {
  const r = netbootSettingsSchema.safeParse(value ?? {});
  if (!r.success) throw new AppError("VALIDATION", `Stored netboot settings are invalid: ${formatIssues(r.error).map((i) => `${i.field}: ${i.message}`).join("; ")}`);
  return r.data;
}

function validSettings(input: NetbootSettingsInput): NetbootSettings {
  const r = netbootSettingsSchema.safeParse(input);
  if (!r.success) {
    const details = formatIssues(r.error);
    throw new AppError("VALIDATION", details.map((i) => `${i.field}: ${i.message}`).join("; "), details);
  }
  return r.data;
}

/**
 * Validate and save through the Store (either database; the netboot settings router); publishes netboot.changed.
 * @throws AppError VALIDATION
 */
export async function storeNetbootSettings(d: Domain, input: NetbootSettingsInput, actor: Actor): Promise<NetbootSettings> {
  const value = validSettings(input);
  const store = storeOf(d);
  const { settings: t } = store.t;
  await store.transaction(async (tx) => {
    await tx
      .insert(t)
      .values({ key: KEY, value, updatedAt: new Date() })
      .onConflictDoUpdate({ target: t.key, set: { value, updatedAt: new Date() } });
    await recordStoreEvent(store, tx, { actor, machineId: null, kind: "netboot.settings", message: `Netboot settings saved (mode ${value.mode})`, payload: { mode: value.mode } });
  });
  d.bus.publish({ type: "netboot.changed" });
  return value;
}

/**
 * The settings dnsmasq is rendered from: the stored settings, with the DHCP range, netmask, gateway and DNS servers
 * of the provisioning subnet when there is one. The server's own address (serverAddress, httpBaseUrl) is only ever
 * the netboot settings'. @throws AppError VALIDATION when the provisioning subnet does not hold serverAddress
 */
export function withProvisioningSubnet(s: NetbootSettings, subnet: Subnet | null): NetbootSettings {
  if (!subnet || !subnet.dynamicStart || !subnet.dynamicEnd) return s;
  const c = parseCidr(subnet.cidr);
  if (!c || c.family !== 4) return s;
  if (!inCidr(c, parseAddr(s.serverAddress)!)) {
    throw new AppError("VALIDATION", `The provisioning subnet ${subnet.name} (${subnet.cidr}) does not contain the netboot server address ${s.serverAddress}`);
  }
  const mask = Number((0xffffffffn << BigInt(32 - c.prefix)) & 0xffffffffn);
  const netmask = [24, 16, 8, 0].map((b) => (mask >>> b) & 255).join(".");
  const dns4 = subnet.dns.filter((x) => parseAddr(x)?.family === 4);
  return {
    ...s,
    rangeStart: subnet.dynamicStart,
    rangeEnd: subnet.dynamicEnd,
    netmask,
    gateway: subnet.gateway ?? s.gateway,
    dnsServers: dns4.length ? dns4.slice(0, 4) : s.dnsServers,
  };
}

/** The stored settings with the provisioning subnet applied (either database): what the netboot service renders and dnsmasq gets. */
export async function loadEffectiveNetbootSettings(store: Store): Promise<NetbootSettings> {
  const { subnets: t } = store.t;
  const [subnet] = await store.db.select().from(t).where(eq(t.provisioning, true)).limit(1);
  return withProvisioningSubnet(await loadNetbootSettings(store), (subnet) ?? null);
}
