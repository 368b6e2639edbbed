/**
 * A machine's whole network (NICs, bonds, VLANs, addressing) read for the editor and replaced in one transaction
 * (issue 14 point 2). The input is validated by the one schema (lib/net-model.ts machineNetworkSchema) at the API;
 * here the subnets' addresses are allocated (auto) or pinned (static), and what is written is read back through
 * loadNetModel, so a network that could not be rendered is never stored.
 */
import { and, eq, inArray, ne } from "drizzle-orm";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { BUSY_STATES, STATE_LABELS } from "../../lib/lifecycle";
import type { LiveEvent } from "../../lib/live-events";
import { splitCidr, type MachineNetwork, type NetIface } from "../../lib/net-model";
import type { Actor, Domain } from "../context";
import { lockMachines, storeOf, type Store } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { loadNetbootSettings } from "../netboot/settings";
import { loadNetModelIn } from "../orchestrator/net-model-read";
import { StoreAllocator, type Allocated } from "../subnets/allocate";

/** The machine's network as the editor shows it, and its boot NIC's MAC (kept whatever the edit). @throws AppError MACHINE_NOT_FOUND */
export async function getMachineNetworkIn(store: Store, machineId: number): Promise<{ bootMac: string | null; network: MachineNetwork }> {
  const { machines, nics } = store.t;
  const [m] = await store.db.select({ id: machines.id }).from(machines).where(eq(machines.id, machineId)).limit(1);
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  const [boot] = await store.db.select({ mac: nics.mac }).from(nics).where(and(eq(nics.machineId, machineId), eq(nics.isBoot, true))).limit(1);
  const s = await loadNetbootSettings(store);
  return { bootMac: boot?.mac ?? null, network: await loadNetModelIn(store, store.db, machineId, s.dnsServers, s.domain) };
}

type Addressing = {
  ip: string | null;
  prefix: number | null;
  gateway: string | null;
  addressMode: string;
  ipv6Mode: string;
  ip6: string | null;
  prefix6: number | null;
  gateway6: string | null;
  dns: string | null;
  mtu: number | null;
  subnetId: number | null;
  subnet6Id: number | null;
};

/**
 * Replace the machine's network, all or nothing. Interfaces keep their auto addresses when they keep their name
 * and subnet; NICs are matched by MAC (the boot NIC always stays, unnamed when not listed; other NICs not listed
 * are removed). @throws AppError MACHINE_NOT_FOUND, MACHINE_BUSY, VALIDATION, CONFLICT (naming the holder)
 */
export async function setMachineNetwork(d: Domain, machineId: number, net: MachineNetwork, actor: Actor): Promise<void> {
  const live: LiveEvent[] = [];
  const errors: ErrorDetail[] = [];
  const field = (i: number, f: string) => `interfaces.${i}.${f}`;
  net.interfaces.forEach((it, i) => {
    if (it.kind === "ethernet" && !it.mac) errors.push({ field: field(i, "mac"), message: `${it.name}: a NIC needs its MAC address` });
    if (it.mode === "auto" && !it.subnetId) errors.push({ field: field(i, "subnetId"), message: `${it.name}: address mode auto needs a subnet` });
    if (it.ipv6Mode === "auto" && !it.subnet6Id) errors.push({ field: field(i, "subnet6Id"), message: `${it.name}: IPv6 mode auto needs an IPv6 subnet` });
  });
  if (errors.length) throw new AppError("VALIDATION", errors.map((e) => e.message).join("; "), errors);

  const store = storeOf(d);
  const { machines, nics, nicLinks, ipAllocations } = store.t;
  await store.transaction(async (tx) => {
    live.length = 0;
    {
      await lockMachines(tx, [machineId]);
      const [m] = await tx.select().from(machines).where(eq(machines.id, machineId)).limit(1);
      if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
      if (BUSY_STATES.includes(m.state)) {
        throw new AppError("MACHINE_BUSY", `${m.name} is ${STATE_LABELS[m.state].toLowerCase()}: its network cannot change until that finishes (or is aborted)`);
      }
      const [boot] = await tx.select().from(nics).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, true))).limit(1);
      const bootWasAllocated =
        !!boot && (await tx.select({ id: ipAllocations.id }).from(ipAllocations).where(and(eq(ipAllocations.nicId, boot.id), eq(ipAllocations.address, boot.ip ?? ""))).limit(1)).length > 0;
      // Auto addresses the machine holds now, by interface name and subnet: kept through the edit.
      const held = new Map<string, string>();
      for (const a of await tx
        .select({ subnetId: ipAllocations.subnetId, address: ipAllocations.address, mode: ipAllocations.mode, nic: nics.ifname, link: nicLinks.ifname })
        .from(ipAllocations)
        .leftJoin(nics, eq(nics.id, ipAllocations.nicId))
        .leftJoin(nicLinks, eq(nicLinks.id, ipAllocations.linkId))
        .where(eq(ipAllocations.machineId, m.id))) {
        const name = a.nic ?? a.link;
        if (name && a.mode === "auto") held.set(`${name}/${a.subnetId}`, a.address);
      }
      // Clear the machine's addressing, then hand out again: its own old addresses are free to it.
      await tx.delete(ipAllocations).where(eq(ipAllocations.machineId, m.id));
      await tx.delete(nicLinks).where(eq(nicLinks.machineId, m.id));
      const macs = net.interfaces.flatMap((it) => (it.kind === "ethernet" && it.mac ? [it.mac] : []));
      const others = await tx.select({ id: nics.id, mac: nics.mac }).from(nics).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, false)));
      const gone = others.filter((o) => !macs.includes(o.mac)).map((o) => o.id);
      if (gone.length) await tx.delete(nics).where(inArray(nics.id, gone));
      await tx.update(nics).set({ ip6: null }).where(eq(nics.machineId, m.id));
      await tx.update(nics).set({ ip: null }).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, false)));
      if (bootWasAllocated) await tx.update(nics).set({ ip: null }).where(eq(nics.id, boot.id));
      // A listed MAC that belongs to another machine is refused by name.
      for (const mac of macs) {
        const [other] = await tx.select({ name: machines.name }).from(nics).innerJoin(machines, eq(machines.id, nics.machineId)).where(and(eq(nics.mac, mac), ne(nics.machineId, m.id))).limit(1);
        if (other) throw new AppError("CONFLICT", `MAC ${mac} belongs to ${other.name}`, [{ field: field(net.interfaces.findIndex((it) => it.kind === "ethernet" && it.mac === mac), "mac"), message: `Belongs to ${other.name}` }]);
      }

      const allocator = new StoreAllocator(store, tx);
      // Subnets locked in ascending id order (PostgreSQL): two edits naming the same subnets cannot deadlock on them.
      // A missing one is reported below, with its field.
      const subnetIds = [...new Set(net.interfaces.flatMap((it) => [it.subnetId, it.subnet6Id]).filter((x): x is number => !!x))].sort((a, b) => a - b);
      for (const sid of subnetIds) await allocator.subnet(sid).catch((err: unknown) => { if (!(err instanceof AppError)) throw err; });
      for (const [i, it] of net.interfaces.entries()) {
        if (it.mode === "static" && it.subnetId && it.ipv4) await allocator.hold(it.subnetId, splitCidr(it.ipv4).address, i * 2);
        if (it.ipv6Mode === "static" && it.subnet6Id && it.ipv6) await allocator.hold(it.subnet6Id, splitCidr(it.ipv6).address, i * 2 + 1);
        const k4 = it.subnetId && held.get(`${it.name}/${it.subnetId}`);
        if (it.mode === "auto" && k4) await allocator.hold(it.subnetId!, k4, i * 2);
        const k6 = it.subnet6Id && held.get(`${it.name}/${it.subnet6Id}`);
        if (it.ipv6Mode === "auto" && k6) await allocator.hold(it.subnet6Id!, k6, i * 2 + 1);
      }
      const records: { a: Allocated; mode: "auto" | "static"; i: number }[] = [];
      const at = (i: number, f: string) => (err: unknown) => {
        if (err instanceof AppError) throw new AppError(err.code, `${net.interfaces[i]!.name}: ${err.message}`, [{ field: field(i, f), message: err.message }]);
        throw err;
      };
      const rows: Addressing[] = [];
      for (const [i, it] of net.interfaces.entries()) {
        let v4: Allocated | null = null;
        let v6: Allocated | null = null;
        try {
          if (it.subnetId && (await allocator.subnet(it.subnetId, field(i, "subnetId"))).family !== 4) throw new AppError("VALIDATION", "the IPv4 subnet is an IPv6 subnet");
          if (it.mode === "auto") v4 = held.has(`${it.name}/${it.subnetId}`) ? await allocator.pin(it.subnetId!, held.get(`${it.name}/${it.subnetId}`)!, field(i, "ipv4"), i * 2) : await allocator.auto(it.subnetId!);
          else if (it.mode === "static" && it.subnetId) {
            const c = splitCidr(it.ipv4!);
            v4 = await allocator.pin(it.subnetId, c.address, field(i, "ipv4"), i * 2);
            if (c.prefix !== v4.prefix) throw new AppError("VALIDATION", `${it.ipv4} has prefix /${c.prefix}; subnet ${v4.subnet.name} is ${v4.subnet.cidr}`);
          }
        } catch (err) {
          at(i, "ipv4")(err);
        }
        try {
          if (it.subnet6Id && (await allocator.subnet(it.subnet6Id, field(i, "subnet6Id"))).family !== 6) throw new AppError("VALIDATION", "the IPv6 subnet is an IPv4 subnet");
          if (it.ipv6Mode === "auto") v6 = held.has(`${it.name}/${it.subnet6Id}`) ? await allocator.pin(it.subnet6Id!, held.get(`${it.name}/${it.subnet6Id}`)!, field(i, "ipv6"), i * 2 + 1) : await allocator.auto(it.subnet6Id!);
          else if (it.ipv6Mode === "static" && it.subnet6Id) {
            const c = splitCidr(it.ipv6!);
            v6 = await allocator.pin(it.subnet6Id, c.address, field(i, "ipv6"), i * 2 + 1);
            if (c.prefix !== v6.prefix) throw new AppError("VALIDATION", `${it.ipv6} has prefix /${c.prefix}; subnet ${v6.subnet.name} is ${v6.subnet.cidr}`);
          }
        } catch (err) {
          at(i, "ipv6")(err);
        }
        if (v4) records.push({ a: v4, mode: it.mode === "auto" ? "auto" : "static", i });
        if (v6) records.push({ a: v6, mode: it.ipv6Mode === "auto" ? "auto" : "static", i });
        const c4 = it.ipv4 ? splitCidr(it.ipv4) : null;
        const c6 = it.ipv6 ? splitCidr(it.ipv6) : null;
        rows.push({
          ip: v4?.address ?? c4?.address ?? null,
          prefix: v4?.prefix ?? c4?.prefix ?? null,
          gateway: it.gateway4 ?? (v4 && v4.subnet.gateway) ?? null,
          addressMode: it.mode,
          ipv6Mode: it.ipv6Mode,
          ip6: v6?.address ?? c6?.address ?? null,
          prefix6: v6?.prefix ?? c6?.prefix ?? null,
          gateway6: it.gateway6 ?? (v6 && v6.subnet.gateway) ?? null,
          dns: it.dns.length ? JSON.stringify(it.dns) : null,
          mtu: it.mtu ?? null,
          subnetId: it.subnetId ?? null,
          subnet6Id: it.subnet6Id ?? null,
        });
      }

      for (const [i, a] of rows.entries()) {
        if (!a.ip || net.interfaces[i]!.kind !== "ethernet") continue;
        const [other] = await tx.select({ name: machines.name }).from(nics).innerJoin(machines, eq(machines.id, nics.machineId)).where(and(eq(nics.ip, a.ip), ne(nics.machineId, m.id))).limit(1);
        if (other) throw new AppError("CONFLICT", `${net.interfaces[i]!.name}: IP ${a.ip} belongs to ${other.name}`, [{ field: field(i, "ipv4"), message: `Belongs to ${other.name}` }]);
      }
      const holderOf = new Map<number, { nicId?: number; linkId?: number }>();
      for (const [i, it] of net.interfaces.entries() as IterableIterator<[number, NetIface]>) {
        const a = rows[i]!;
        if (it.kind === "ethernet") {
          const [existing] = await tx.select({ id: nics.id, isBoot: nics.isBoot, ip: nics.ip }).from(nics).where(and(eq(nics.machineId, m.id), eq(nics.mac, it.mac!))).limit(1);
          // The boot NIC in mode dhcp or none keeps a typed IP (its DHCP reservation on the provisioning network); an
          // address it had from a subnet is released with its allocation.
          const ip = existing?.isBoot && (it.mode === "dhcp" || it.mode === "none") && !bootWasAllocated ? existing.ip : a.ip;
          const values = { ...a, ip, ifname: it.name };
          if (existing) {
            await tx.update(nics).set(values).where(eq(nics.id, existing.id));
            holderOf.set(i, { nicId: existing.id });
          } else {
            const [row] = await tx.insert(nics).values({ machineId: m.id, mac: it.mac!, isBoot: false, ...values }).returning({ id: nics.id });
            holderOf.set(i, { nicId: row!.id });
          }
        } else {
          const [row] = await tx
            .insert(nicLinks)
            .values({
              machineId: m.id,
              ifname: it.name,
              kind: it.kind,
              ...a,
              ...(it.kind === "bond"
                ? { members: it.members, bondMode: it.bondMode, miimon: it.miimon, lacpRate: it.lacpRate ?? null, xmitHashPolicy: it.xmitHashPolicy ?? null }
                : { parent: it.parent, vlanId: it.vlanId }),
            })
            .returning({ id: nicLinks.id });
          holderOf.set(i, { linkId: row!.id });
        }
      }
      if (boot && !macs.includes(boot.mac)) {
        // Not listed: the boot NIC stays (it is how the machine netboots), unconfigured in the installed OS.
        await tx.update(nics).set({ ifname: null, addressMode: null, subnetId: null, subnet6Id: null, ip6: null, ipv6Mode: null, gateway6: null, prefix6: null, mtu: null, dns: null }).where(eq(nics.id, boot.id));
      }
      for (const r of records) allocator.record(r.a, r.mode, { machineId: m.id, ...holderOf.get(r.i) });
      await allocator.flush();
      // Read back through the renderers' loader: what cannot be rendered is not stored.
      const s = await loadNetbootSettings(store, tx);
      await loadNetModelIn(store, tx, m.id, s.dnsServers, s.domain);
      await tx.update(machines).set({ updatedAt: new Date() }).where(eq(machines.id, m.id));
      const summary = `${net.interfaces.length} interface(s): ${net.interfaces.map((it) => it.name).join(", ") || "none"}`;
      const ev = await recordStoreEvent(store, tx, { actor, machineId: m.id, kind: "machine.network", message: `Network set: ${summary}`, payload: { interfaces: net.interfaces.map((it) => ({ name: it.name, kind: it.kind })), allocated: records.map((r) => r.a.address) } });
      live.push(
        { type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: m.maintenance, rackId: m.rackId },
        { type: "event.created", event: { ...ev, machineName: m.name } },
      );
    }
  });
  for (const e of live) d.bus.publish(e);
}
