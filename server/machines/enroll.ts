import { and, eq } from "drizzle-orm";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { BUSY_STATES, DELETABLE_STATES, STATE_LABELS } from "../../lib/lifecycle";
import type { LiveEvent } from "../../lib/live-events";
import type { MachineEnroll } from "../../lib/schemas";
import type { z } from "zod";
import type { machineUpdateSchema } from "../../lib/schemas";
import type { MachineState } from "../../lib/lifecycle";
import type { PowerState } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { insertOne } from "../db/hot-insert";
import type { nics, Subnet } from "../db/schema";
import { forUpdate } from "../db/sql";
import { storeOf, type Store, type StoreTx } from "../db/store";
import { recordEventHot, recordStoreEvent } from "../events/audit";
import { enrollQueries, storeCheckPlacement, storeUniqueProblems } from "./enroll-queries";
import { uniqueGuarded } from "./unique";
import { StoreAllocator, type Allocated } from "../subnets/allocate";

/** What must belong to one machine only: its name, boot MAC and IP, and its BMC's address and port. */
export interface UniqueKeys {
  name?: string | null;
  mac?: string | null;
  ip?: string | null;
  /** The fake driver talks to no address: its BMCs are not checked. */
  bmc?: { driver: string; address: string; port: number } | null;
}

/** The lookups of uniqueProblems(), prepared once per connection (a bulk enrollment runs them for every row). */
const lookups = new WeakMap<object, ReturnType<typeof prepareLookups>>();

function prepareLookups(db: Db) {
  const c = db.$client;
  const owner = "JOIN machines m ON m.id = x.machine_id";
  return {
    name: c.prepare<[string, number], { id: number }>("SELECT id FROM machines WHERE name = ? AND id != ?"),
    mac: c.prepare<[string, number], { name: string }>(`SELECT m.name FROM nics x ${owner} WHERE x.mac = ? AND x.machine_id != ?`),
    ip: c.prepare<[string, number], { name: string }>(`SELECT m.name FROM nics x ${owner} WHERE x.ip = ? AND x.machine_id != ?`),
    ipAsBmc: c.prepare<[string], { name: string }>(`SELECT m.name FROM bmcs x ${owner} WHERE x.address = ? AND x.driver != 'fake'`),
    bmc: c.prepare<[string, number, number], { name: string }>(
      `SELECT m.name FROM bmcs x ${owner} WHERE x.address = ? AND x.port = ? AND x.driver != 'fake' AND x.machine_id != ?`,
    ),
    bmcAsIp: c.prepare<[string], { name: string }>(`SELECT m.name FROM nics x ${owner} WHERE x.ip = ?`),
  };
}

/**
 * Every clash of `v` with other machines in the database (name, MAC, IP, BMC address:port, and an IP used both as a
 * machine's IP and as a BMC address), with the field it concerns. Field details let forms point at the input.
 * Runs on `db`'s connection, so inside an open transaction it sees that transaction's rows.
 */
export function uniqueProblems(db: Db, v: UniqueKeys, excludeMachineId?: number): ErrorDetail[] {
  let q = lookups.get(db.$client);
  if (!q) lookups.set(db.$client, (q = prepareLookups(db)));
  const notSelf = excludeMachineId ?? 0;
  const errors: ErrorDetail[] = [];
  if (v.name && q.name.get(v.name, notSelf)) errors.push({ field: "name", message: `A machine named ${v.name} already exists` });
  if (v.mac) {
    const hit = q.mac.get(v.mac, notSelf);
    if (hit) errors.push({ field: "bootMac", message: `MAC ${v.mac} belongs to ${hit.name}` });
  }
  if (v.ip) {
    const hit = q.ip.get(v.ip, notSelf);
    if (hit) errors.push({ field: "ip", message: `IP ${v.ip} belongs to ${hit.name}` });
    const bmc = q.ipAsBmc.get(v.ip);
    if (bmc) errors.push({ field: "ip", message: `IP ${v.ip} is the BMC address of ${bmc.name}` });
  }
  if (v.bmc && v.bmc.driver !== "fake") {
    // Stored lower-case (lib/schemas.ts bmcInputSchema), looked up by the bmcs_address index.
    const address = v.bmc.address.toLowerCase();
    const hit = q.bmc.get(address, v.bmc.port, notSelf);
    if (hit) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address}:${v.bmc.port} belongs to ${hit.name}'s BMC` });
    const host = q.bmcAsIp.get(address);
    if (host) errors.push({ field: "bmc.address", message: `BMC address ${v.bmc.address} is the IP of ${host.name}` });
  }
  return errors;
}

export function profileMissing(id: number): AppError {
  return new AppError("NOT_FOUND", `OS profile ${id} does not exist`, [{ field: "osProfileId", message: "No such profile" }]);
}

/**
 * Insert one machine inside an open Store transaction (the statements of enroll-queries.ts); returns the id and the
 * events to publish after commit. `allocator` reads subnets through the same transaction (StoreAllocator).
 */
async function insertMachine(d: Domain, store: Store, tx: StoreTx, input: MachineEnroll, actor: Actor, allocator: StoreAllocator): Promise<{ id: number; live: LiveEvent[] }> {
  const t = store.t;
  const boot = await bootAddressing(allocator, input.network, input.ip ?? null);
  // An auto address is free by construction (the allocator excluded every NIC IP and BMC address of its subnet and
  // tracks what this transaction hands out): only typed addresses need the per-row uniqueness queries.
  const auto = boot.allocated && boot.mode === "auto" && boot.columns.ip === boot.allocated.address;
  const clashes = await storeUniqueProblems(store, tx, { name: input.name, mac: input.bootMac, ip: auto ? null : boot.columns.ip, bmc: input.bmc });
  if (clashes.length) throw new AppError("CONFLICT", clashes.map((e) => e.message).join("; "), clashes);
  if (!boot.allocated && boot.columns.ip) allocator.noteTaken(boot.columns.ip);
  if (input.bmc) allocator.noteTaken(input.bmc.address);
  // The rack's row is locked on PostgreSQL (as updateMachine and bulk enrollment do), so two machines placed into one
  // rack at once are checked in turn. SQLite's BEGIN IMMEDIATE already serialises them.
  if (input.rackId != null && store.dialect === "postgres") await forUpdate(store.dialect, tx.select({ id: t.racks.id }).from(t.racks).where(eq(t.racks.id, input.rackId)));
  await storeCheckPlacement(store, tx, input);
  if (input.osProfileId != null && !(await enrollQueries(store).profile(tx, { id: input.osProfileId }))) throw profileMissing(input.osProfileId);
  const values = machineRow(input, new Date());
  // The columns the schema fills in (state, power state), as stored.
  const created = (await insertOne(store, t.machines, Object.keys(values), ["id", "state", "powerState"])(tx, values)) as { id: number; state: MachineState; powerState: PowerState };
  const m = { ...values, ...created };
  await insertBootNicAndBmc(d, store, tx, m.id, input, boot, allocator);
  const ev = await recordEventHot(store, tx, {
    actor,
    machineId: m.id,
    kind: "machine.enrolled",
    message: `Enrolled ${m.name} (${input.bootMac})`,
    payload: { rackId: m.rackId, uPosition: m.uPosition, mac: input.bootMac, ip: input.ip ?? null },
  });
  const live: LiveEvent[] = [
    { type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: false, rackId: m.rackId },
    { type: "event.created", event: { ...ev, machineName: m.name } },
  ];
  if (m.rackId) live.push({ type: "rack.changed", rackId: m.rackId });
  return { id: m.id, live };
}

export type BootAddressing = { columns: Partial<typeof nics.$inferInsert> & { ip: string | null }; allocated: Allocated | null; mode: "auto" | "static" };

/**
 * The boot NIC's address columns from its subnet and address mode (issue 14): auto allocates the first free address,
 * static pins `ip` (in the subnet, not reserved, dynamic or taken), dhcp and none only record the subnet. A subnet
 * without a mode means auto. No subnet: the legacy typed `ip` (static when an interface name is set, else a DHCP
 * reservation). @throws AppError VALIDATION, NOT_FOUND, CONFLICT
 */
export async function bootAddressing(allocator: StoreAllocator, net: MachineEnroll["network"], ip: string | null, holder?: number): Promise<BootAddressing> {
  if (!net?.subnetId) return typedAddressing(net, ip);
  const mode = net.addressMode ?? "auto";
  const subnet = await allocator.subnet(net.subnetId, "network.subnetId");
  let allocated: Allocated | null = null;
  if (mode === "auto") allocated = await allocator.auto(net.subnetId, "network.subnetId");
  else if (mode === "static") {
    if (subnet.family === 6) throw new AppError("VALIDATION", `Subnet ${subnet.name} is IPv6: pin its addresses in the machine's network editor`, [{ field: "network.addressMode", message: "Static IPv6 is set per interface" }]);
    if (!ip) throw new AppError("VALIDATION", "Address mode static needs an IP address", [{ field: "ip", message: "Give the address to pin" }]);
    allocated = await allocator.pin(net.subnetId, ip, "ip", holder);
  }
  return subnetAddressing(subnet, net, ip, mode, allocated);
}

type AddressMode = NonNullable<NonNullable<MachineEnroll["network"]>["addressMode"]>;

/**
 * bootAddressing without awaiting, for a subnet the allocator has already loaded (bulk enrollment loads every subnet
 * of the batch first): null where it would have to read (a subnet not loaded, a static pin naming its holder).
 */
export function loadedAddressing(allocator: StoreAllocator, net: MachineEnroll["network"], ip: string | null): BootAddressing | null {
  if (!net?.subnetId) return typedAddressing(net, ip);
  const mode = net.addressMode ?? "auto";
  const subnet = allocator.loadedSubnet(net.subnetId);
  if (!subnet || mode === "static") return null;
  const allocated = mode === "auto" ? allocator.autoLoaded(net.subnetId, "network.subnetId") : null;
  return subnetAddressing(subnet, net, ip, mode, allocated);
}

/** The boot NIC's columns in its subnet, with what was allocated for it. */
function subnetAddressing(subnet: Subnet, net: NonNullable<MachineEnroll["network"]>, ip: string | null, mode: AddressMode, allocated: Allocated | null): BootAddressing {
  const dbMode = mode;
  if (subnet.family === 6) {
    return {
      columns: { ip, subnet6Id: subnet.id, ipv6Mode: allocated ? "auto" : dbMode === "none" ? "none" : "dhcp", ip6: allocated?.address ?? null, prefix6: allocated?.prefix ?? null, gateway6: allocated?.gateway ?? null },
      allocated,
      mode: "auto",
    };
  }
  return {
    columns: {
      ip: allocated?.address ?? ip,
      subnetId: subnet.id,
      addressMode: dbMode,
      ...(allocated && { prefix: allocated.prefix, gateway: net.gateway ?? allocated.gateway }),
    },
    allocated,
    mode: mode === "static" ? "static" : "auto",
  };
}

/** bootAddressing of a boot NIC without a subnet: its typed IP, nothing allocated. @throws AppError VALIDATION for mode auto */
export function typedAddressing(net: MachineEnroll["network"], ip: string | null): BootAddressing {
  const mode = net?.addressMode ?? null;
  if (mode === "auto") throw new AppError("VALIDATION", "Address mode auto needs a subnet to allocate from", [{ field: "network.subnetId", message: "Choose a subnet for address mode auto" }]);
  return { columns: { ip, ...(mode && { addressMode: mode }) }, allocated: null, mode: "static" };
}

/**
 * Enroll one machine: its boot NIC, optional IP and optional BMC (password encrypted at rest).
 * @throws AppError CONFLICT, RACK_NOT_FOUND, U_OUT_OF_RANGE, U_OVERLAP, VALIDATION
 */
export async function enrollMachine(d: Domain, input: MachineEnroll, actor: Actor): Promise<{ id: number }> {
  const store = storeOf(d);
  // SQLite's Store transaction is BEGIN IMMEDIATE: the write lock is taken before the allocator reads what is free,
  // so two processes never both pick one address. PostgreSQL: the allocator locks the subnet's row before it reads
  // what is free (StoreAllocator); a clash found only by a unique index is checked again (uniqueGuarded).
  const { id, live } = await uniqueGuarded(store, () =>
    store.transaction(async (tx) => {
      const allocator = new StoreAllocator(store, tx);
      const r = await insertMachine(d, store, tx, input, actor, allocator);
      await allocator.flush();
      return r;
    }),
  );
  for (const e of live) d.bus.publish(e);
  return { id };
}

export function describe(e: ErrorDetail): string {
  return `Row ${e.row}${e.field ? `, field ${e.field}` : ""}: ${e.message}`;
}

export type MachineUpdate = z.output<typeof machineUpdateSchema>;

/**
 * The boot NIC (with its address from `boot`, its allocation recorded) and the BMC (password encrypted) of a machine
 * just inserted by a single enrollment, inside its Store transaction. Bulk enrollment writes the same rows
 * (bootNicRow, bmcRow) in multi-row inserts.
 */
export async function insertBootNicAndBmc(d: Domain, store: Store, tx: StoreTx, id: number, input: MachineEnroll, boot: BootAddressing, allocator: StoreAllocator): Promise<void> {
  const nic = bootNicRow(id, input, boot);
  const { id: nicId } = (await insertOne(store, store.t.nics, Object.keys(nic), ["id"])(tx, nic)) as { id: number };
  if (boot.allocated) allocator.record(boot.allocated, boot.mode, { machineId: id, nicId });
  const bmc = bmcRow(d, id, input);
  if (bmc) await insertOne(store, store.t.bmcs, Object.keys(bmc))(tx, bmc);
}

/** The boot NIC's row of an enrolled machine (single or bulk). */
export function bootNicRow(machineId: number, input: MachineEnroll, boot: BootAddressing): Record<string, unknown> & { machineId: number } {
  return { machineId, mac: input.bootMac, isBoot: true, ...nicNetwork(input.network), ...boot.columns };
}

/** The BMC row of an enrolled machine (single or bulk; password encrypted), or null without a BMC. */
export function bmcRow(d: Pick<Domain, "secrets">, machineId: number, input: MachineEnroll): Record<string, unknown> | null {
  if (!input.bmc) return null;
  return {
    machineId,
    driver: input.bmc.driver,
    address: input.bmc.address,
    port: input.bmc.port,
    username: input.bmc.username,
    passwordEncrypted: d.secrets.encrypt(input.bmc.password),
    privilege: input.bmc.privilege,
    cipherSuite: input.bmc.cipherSuite,
  };
}

/** The machines row of an enrollment (single or bulk), as insertRow writes it. */
export function machineRow(input: MachineEnroll, now: Date) {
  return {
    name: input.name,
    rackId: input.rackId ?? null,
    uPosition: input.uPosition ?? null,
    uHeight: input.uHeight,
    osProfileId: input.osProfileId ?? null,
    firmware: input.firmware ?? "auto",
    createdAt: now,
    updatedAt: now,
  };
}

export function nicNetwork(n: MachineEnroll["network"]): { ifname: string | null; prefix: number | null; gateway: string | null } {
  return { ifname: n?.ifname ?? null, prefix: n?.prefix ?? null, gateway: n?.gateway ?? null };
}

/** Change a machine's inventory fields. @throws AppError MACHINE_NOT_FOUND, CONFLICT, U_* , MACHINE_BUSY */
export async function updateMachine(d: Domain, input: MachineUpdate, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { machines, nics, bmcs, ipAllocations, subnets } = store.t;
  const live: LiveEvent[] = [];
  await uniqueGuarded(store, () =>
    store.transaction(async (tx) => {
      live.length = 0;
      const [m] = await forUpdate(store.dialect, tx.select().from(machines).where(eq(machines.id, input.id)).limit(1));
      if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${input.id} does not exist`);
      const bootNic = () => tx.select().from(nics).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, true))).limit(1);
      const [boot] = await bootNic();
      const clashes = await storeUniqueProblems(store, tx, { name: input.name, mac: input.bootMac, ip: input.ip }, m.id);
      if (clashes.length) throw new AppError("CONFLICT", clashes.map((e) => e.message).join("; "), clashes);
      const placement = {
        rackId: input.rackId !== undefined ? input.rackId : m.rackId,
        uPosition: input.uPosition !== undefined ? input.uPosition : m.uPosition,
        uHeight: input.uHeight ?? m.uHeight,
      };
      // The rack's row is locked on PostgreSQL, so two machines placed into one rack at once are checked in turn.
      if (placement.rackId != null) await forUpdate(store.dialect, tx.select({ id: store.t.racks.id }).from(store.t.racks).where(eq(store.t.racks.id, placement.rackId)));
      await storeCheckPlacement(store, tx, placement, m.id);
      if (input.osProfileId != null && !(await enrollQueries(store).profile(tx, { id: input.osProfileId }))) throw profileMissing(input.osProfileId);
      const changed: string[] = [];
      const set: Partial<typeof machines.$inferInsert> = { updatedAt: new Date() };
      if (input.name !== undefined && input.name !== m.name) {
        set.name = input.name;
        changed.push("name");
      }
      if (placement.rackId !== m.rackId || placement.uPosition !== m.uPosition || placement.uHeight !== m.uHeight) {
        Object.assign(set, placement);
        changed.push("placement");
      }
      if (input.osProfileId !== undefined && input.osProfileId !== m.osProfileId) {
        set.osProfileId = input.osProfileId;
        changed.push("osProfile");
      }
      if (input.firmware !== undefined && input.firmware !== m.firmware) {
        set.firmware = input.firmware;
        changed.push("firmware");
      }
      await tx.update(machines).set(set).where(eq(machines.id, m.id));
      if ((input.bootMac !== undefined && input.bootMac !== boot?.mac) || (input.ip !== undefined && input.ip !== boot?.ip)) {
        if (BUSY_STATES.includes(m.state)) {
          throw new AppError("MACHINE_BUSY", `${m.name} is ${m.state}: its boot NIC cannot change now`);
        }
        if (boot && input.ip !== undefined && input.ip !== boot.ip) {
          // An address allocated from a subnet changes only through the network editor (it owns the allocation row).
          const [held] = await tx
            .select({ subnet: subnets.name })
            .from(ipAllocations)
            .innerJoin(subnets, eq(subnets.id, ipAllocations.subnetId))
            .where(eq(ipAllocations.nicId, boot.id))
            .limit(1);
          if (held) {
            const message = `The boot NIC's address comes from subnet ${held.subnet}: change it in the machine's network interfaces`;
            throw new AppError("CONFLICT", message, [{ field: "ip", message }]);
          }
        }
        if (boot) {
          await tx
            .update(nics)
            .set({ mac: input.bootMac ?? boot.mac, ip: input.ip !== undefined ? input.ip : boot.ip })
            .where(eq(nics.id, boot.id));
        } else if (input.bootMac) {
          await tx.insert(nics).values({ machineId: m.id, mac: input.bootMac, ip: input.ip ?? null, isBoot: true, ...nicNetwork(input.network) });
        }
        changed.push("nic");
      }
      if (input.network !== undefined) {
        const [now] = await bootNic();
        const next = nicNetwork(input.network);
        if (now && (now.ifname !== next.ifname || now.prefix !== next.prefix || now.gateway !== next.gateway)) {
          if (BUSY_STATES.includes(m.state)) throw new AppError("MACHINE_BUSY", `${m.name} is ${m.state}: its network configuration cannot change now`);
          await tx.update(nics).set(next).where(eq(nics.id, now.id));
          changed.push("network");
        }
      }
      if (input.bmc === null) {
        await tx.delete(bmcs).where(eq(bmcs.machineId, m.id));
        changed.push("bmc");
      } else if (input.bmc) {
        const [existing] = await tx.select().from(bmcs).where(eq(bmcs.machineId, m.id)).limit(1);
        const password = input.bmc.password ? d.secrets.encrypt(input.bmc.password) : existing?.passwordEncrypted;
        if (!password) throw new AppError("VALIDATION", "A new BMC needs a password", [{ field: "bmc.password", message: "Required" }]);
        const values = {
          driver: input.bmc.driver,
          address: input.bmc.address,
          port: input.bmc.port,
          username: input.bmc.username,
          passwordEncrypted: password,
          privilege: input.bmc.privilege,
          cipherSuite: input.bmc.cipherSuite,
        };
        if (existing) await tx.update(bmcs).set({ ...values, reachable: null, consecutiveFailures: 0, lastError: null }).where(eq(bmcs.machineId, m.id));
        else await tx.insert(bmcs).values({ machineId: m.id, ...values });
        changed.push("bmc");
      }
      const [after] = await tx.select().from(machines).where(eq(machines.id, m.id));
      const ev = await recordStoreEvent(store, tx, {
        actor,
        machineId: m.id,
        kind: "machine.updated",
        message: changed.length ? `Updated ${changed.join(", ")}` : "Saved without changes",
        payload: { changed },
      });
      live.push(
        { type: "machine.changed", machineId: m.id, name: after!.name, state: after!.state, powerState: after!.powerState, maintenance: after!.maintenance, rackId: after!.rackId },
        { type: "event.created", event: { ...ev, machineName: after!.name } },
      );
      for (const r of new Set([m.rackId, after!.rackId])) if (r) live.push({ type: "rack.changed", rackId: r });
    }),
  );
  for (const e of live) d.bus.publish(e);
}

/** Delete a machine that runs nothing and hosts nothing. @throws AppError MACHINE_NOT_FOUND, MACHINE_BUSY */
export async function deleteMachine(d: Domain, id: number, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { machines } = store.t;
  const live = await store.transaction(async (tx) => {
    const [m] = await forUpdate(store.dialect, tx.select().from(machines).where(eq(machines.id, id)).limit(1));
    if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
    if (!DELETABLE_STATES.includes(m.state)) {
      throw new AppError(
        "MACHINE_BUSY",
        `${m.name} is ${STATE_LABELS[m.state]}: release it (or abort its work) before deleting it`,
      );
    }
    await tx.delete(machines).where(eq(machines.id, id));
    const ev = await recordStoreEvent(store, tx, {
      actor,
      machineId: null,
      kind: "machine.deleted",
      message: `Deleted ${m.name}`,
      payload: { machineId: id, name: m.name },
    });
    const out: LiveEvent[] = [{ type: "machine.deleted", machineId: id, rackId: m.rackId }, { type: "event.created", event: ev }];
    if (m.rackId) out.push({ type: "rack.changed", rackId: m.rackId });
    return out;
  });
  for (const e of live) d.bus.publish(e);
}

/** Set or clear the maintenance flag, which blocks every automatic action on the machine. */
export async function setMaintenance(d: Domain, id: number, on: boolean, reason: string | undefined, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { machines } = store.t;
  const live = await store.transaction(async (tx) => {
    const [after] = await tx
      .update(machines)
      .set({ maintenance: on, maintenanceReason: on ? (reason ?? null) : null, updatedAt: new Date() })
      .where(eq(machines.id, id))
      .returning();
    if (!after) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
    const ev = await recordStoreEvent(store, tx, {
      actor,
      machineId: id,
      kind: on ? "maintenance.on" : "maintenance.off",
      message: on ? `Maintenance on${reason ? `: ${reason}` : ""}` : "Maintenance off",
    });
    return [
      { type: "machine.changed", machineId: id, name: after.name, state: after.state, powerState: after.powerState, maintenance: on, rackId: after.rackId },
      { type: "event.created", event: { ...ev, machineName: after.name } },
    ] satisfies LiveEvent[];
  });
  for (const e of live) d.bus.publish(e);
}
