import { and, eq } from "drizzle-orm";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { BUSY_STATES, DELETABLE_STATES, STATE_LABELS } from "../../lib/lifecycle";
import type { LiveEvent } from "../../lib/live-events";
import type { MachineEnroll } from "../../lib/schemas";
import type { z } from "zod";
import type { machineUpdateSchema } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { bmcs, machines, nics, osProfiles } from "../db/schema";
import { recordEvent } from "../events/audit";
import { checkPlacement } from "./placement";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

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

/** @throws AppError CONFLICT with every clash of uniqueProblems(). */
function checkUnique(db: Db, v: UniqueKeys, excludeMachineId?: number): void {
  const errors = uniqueProblems(db, v, excludeMachineId);
  if (errors.length) throw new AppError("CONFLICT", errors.map((e) => e.message).join("; "), errors);
}

function checkProfile(tx: Tx, id: number | null | undefined): void {
  if (id == null) return;
  if (!tx.select({ id: osProfiles.id }).from(osProfiles).where(eq(osProfiles.id, id)).get()) throw profileMissing(id);
}

export function profileMissing(id: number): AppError {
  return new AppError("NOT_FOUND", `OS profile ${id} does not exist`, [{ field: "osProfileId", message: "No such profile" }]);
}

/** Insert one machine inside an open transaction; returns the id and the events to publish after commit. */
function insertMachine(d: Domain, tx: Tx, input: MachineEnroll, actor: Actor): { id: number; live: LiveEvent[] } {
  checkUnique(d.db, { name: input.name, mac: input.bootMac, ip: input.ip, bmc: input.bmc });
  checkPlacement(tx, input);
  checkProfile(tx, input.osProfileId);
  const now = new Date();
  const m = tx
    .insert(machines)
    .values({
      name: input.name,
      rackId: input.rackId ?? null,
      uPosition: input.uPosition ?? null,
      uHeight: input.uHeight,
      osProfileId: input.osProfileId ?? null,
      firmware: input.firmware ?? "auto",
      createdAt: now,
      updatedAt: now,
    })
    .returning()
    .get();
  tx.insert(nics).values({ machineId: m.id, mac: input.bootMac, ip: input.ip ?? null, isBoot: true, ...nicNetwork(input.network) }).run();
  if (input.bmc) {
    tx.insert(bmcs)
      .values({
        machineId: m.id,
        driver: input.bmc.driver,
        address: input.bmc.address,
        port: input.bmc.port,
        username: input.bmc.username,
        passwordEncrypted: d.secrets.encrypt(input.bmc.password),
        privilege: input.bmc.privilege,
        cipherSuite: input.bmc.cipherSuite,
      })
      .run();
  }
  const ev = recordEvent(tx, {
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

/**
 * Enroll one machine: its boot NIC, optional IP and optional BMC (password encrypted at rest).
 * @throws AppError CONFLICT, RACK_NOT_FOUND, U_OUT_OF_RANGE, U_OVERLAP, VALIDATION
 */
export function enrollMachine(d: Domain, input: MachineEnroll, actor: Actor): { id: number } {
  const { id, live } = d.db.transaction((tx) => insertMachine(d, tx, input, actor));
  for (const e of live) d.bus.publish(e);
  return { id };
}

export function describe(e: ErrorDetail): string {
  return `Row ${e.row}${e.field ? `, field ${e.field}` : ""}: ${e.message}`;
}

export type MachineUpdate = z.output<typeof machineUpdateSchema>;

/** The boot NIC's static network columns from the form's `network` (null/omitted: none). */
export function nicNetwork(n: MachineEnroll["network"]): { ifname: string | null; prefix: number | null; gateway: string | null } {
  return { ifname: n?.ifname ?? null, prefix: n?.prefix ?? null, gateway: n?.gateway ?? null };
}

/** Change a machine's inventory fields. @throws AppError MACHINE_NOT_FOUND, CONFLICT, U_* , MACHINE_BUSY */
export function updateMachine(d: Domain, input: MachineUpdate, actor: Actor): void {
  const live: LiveEvent[] = [];
  d.db.transaction((tx) => {
    const m = tx.select().from(machines).where(eq(machines.id, input.id)).get();
    if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${input.id} does not exist`);
    const boot = tx.select().from(nics).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, true))).get();
    checkUnique(d.db, { name: input.name, mac: input.bootMac, ip: input.ip }, m.id);
    const placement = {
      rackId: input.rackId !== undefined ? input.rackId : m.rackId,
      uPosition: input.uPosition !== undefined ? input.uPosition : m.uPosition,
      uHeight: input.uHeight ?? m.uHeight,
    };
    checkPlacement(tx, placement, m.id);
    checkProfile(tx, input.osProfileId);
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
    tx.update(machines).set(set).where(eq(machines.id, m.id)).run();
    if ((input.bootMac !== undefined && input.bootMac !== boot?.mac) || (input.ip !== undefined && input.ip !== boot?.ip)) {
      if (BUSY_STATES.includes(m.state)) {
        throw new AppError("MACHINE_BUSY", `${m.name} is ${m.state}: its boot NIC cannot change now`);
      }
      if (boot) {
        tx.update(nics)
          .set({ mac: input.bootMac ?? boot.mac, ip: input.ip !== undefined ? input.ip : boot.ip })
          .where(eq(nics.id, boot.id))
          .run();
      } else if (input.bootMac) {
        tx.insert(nics).values({ machineId: m.id, mac: input.bootMac, ip: input.ip ?? null, isBoot: true, ...nicNetwork(input.network) }).run();
      }
      changed.push("nic");
    }
    if (input.network !== undefined) {
      const now = tx.select().from(nics).where(and(eq(nics.machineId, m.id), eq(nics.isBoot, true))).get();
      const next = nicNetwork(input.network);
      if (now && (now.ifname !== next.ifname || now.prefix !== next.prefix || now.gateway !== next.gateway)) {
        if (BUSY_STATES.includes(m.state)) throw new AppError("MACHINE_BUSY", `${m.name} is ${m.state}: its network configuration cannot change now`);
        tx.update(nics).set(next).where(eq(nics.id, now.id)).run();
        changed.push("network");
      }
    }
    if (input.bmc === null) {
      tx.delete(bmcs).where(eq(bmcs.machineId, m.id)).run();
      changed.push("bmc");
    } else if (input.bmc) {
      const existing = tx.select().from(bmcs).where(eq(bmcs.machineId, m.id)).get();
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
      if (existing) tx.update(bmcs).set({ ...values, reachable: null, consecutiveFailures: 0, lastError: null }).where(eq(bmcs.machineId, m.id)).run();
      else tx.insert(bmcs).values({ machineId: m.id, ...values }).run();
      changed.push("bmc");
    }
    const after = tx.select().from(machines).where(eq(machines.id, m.id)).get()!;
    const ev = recordEvent(tx, {
      actor,
      machineId: m.id,
      kind: "machine.updated",
      message: changed.length ? `Updated ${changed.join(", ")}` : "Saved without changes",
      payload: { changed },
    });
    live.push(
      { type: "machine.changed", machineId: m.id, name: after.name, state: after.state, powerState: after.powerState, maintenance: after.maintenance, rackId: after.rackId },
      { type: "event.created", event: { ...ev, machineName: after.name } },
    );
    for (const r of new Set([m.rackId, after.rackId])) if (r) live.push({ type: "rack.changed", rackId: r });
  });
  for (const e of live) d.bus.publish(e);
}

/** Delete a machine that runs nothing and hosts nothing. @throws AppError MACHINE_NOT_FOUND, MACHINE_BUSY */
export function deleteMachine(d: Domain, id: number, actor: Actor): void {
  const live: LiveEvent[] = [];
  d.db.transaction((tx) => {
    const m = tx.select().from(machines).where(eq(machines.id, id)).get();
    if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
    if (!DELETABLE_STATES.includes(m.state)) {
      throw new AppError(
        "MACHINE_BUSY",
        `${m.name} is ${STATE_LABELS[m.state]}: release it (or abort its work) before deleting it`,
      );
    }
    tx.delete(machines).where(eq(machines.id, id)).run();
    const ev = recordEvent(tx, {
      actor,
      machineId: null,
      kind: "machine.deleted",
      message: `Deleted ${m.name}`,
      payload: { machineId: id, name: m.name },
    });
    live.push({ type: "machine.deleted", machineId: id, rackId: m.rackId }, { type: "event.created", event: ev });
    if (m.rackId) live.push({ type: "rack.changed", rackId: m.rackId });
  });
  for (const e of live) d.bus.publish(e);
}

/** Set or clear the maintenance flag, which blocks every automatic action on the machine. */
export function setMaintenance(d: Domain, id: number, on: boolean, reason: string | undefined, actor: Actor): void {
  const live: LiveEvent[] = [];
  d.db.transaction((tx) => {
    const m = tx.select().from(machines).where(eq(machines.id, id)).get();
    if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${id} does not exist`);
    const after = tx
      .update(machines)
      .set({ maintenance: on, maintenanceReason: on ? (reason ?? null) : null, updatedAt: new Date() })
      .where(eq(machines.id, id))
      .returning()
      .get();
    const ev = recordEvent(tx, {
      actor,
      machineId: id,
      kind: on ? "maintenance.on" : "maintenance.off",
      message: on ? `Maintenance on${reason ? `: ${reason}` : ""}` : "Maintenance off",
    });
    live.push(
      { type: "machine.changed", machineId: id, name: after.name, state: after.state, powerState: after.powerState, maintenance: on, rackId: after.rackId },
      { type: "event.created", event: { ...ev, machineName: after.name } },
    );
  });
  for (const e of live) d.bus.publish(e);
}
