/**
 * What Rackhand knows about a BMC and the power of its machine: the only writers of `machines.power_state` and
 * of the reachability columns of `bmcs`. Each write and its event row happen in one transaction.
 */
import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { LiveEvent } from "../../lib/live-events";
import type { PowerState } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { lockMachines, storeOf, type Store, type StoreTx, type Tables } from "../db/store";
import { forUpdate } from "../db/sql";
import { recordStoreEvent } from "../events/audit";
import { getPowerSyncSettings } from "./settings";
import type { BmcTarget, OobDriver } from "./types";

export interface BmcHandle {
  target: BmcTarget;
  driver: OobDriver;
  machineName: string;
}

/**
 * The machine's BMC with its password decrypted, and the driver for it.
 * @throws AppError MACHINE_NOT_FOUND, BMC_NOT_CONFIGURED, BMC_UNSUPPORTED (unknown driver)
 */
export async function loadBmc(d: Domain, machineId: number): Promise<BmcHandle> {
  const { db, t } = storeOf(d);
  const [row] = await db
    .select({ name: t.machines.name, bmc: t.bmcs })
    .from(t.machines)
    .leftJoin(t.bmcs, eq(t.bmcs.machineId, t.machines.id))
    .where(eq(t.machines.id, machineId))
    .limit(1);
  if (!row) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  if (!row.bmc) throw new AppError("BMC_NOT_CONFIGURED", `${row.name} has no BMC configured`);
  const b = row.bmc;
  return {
    machineName: row.name,
    driver: d.oob.driver(b.driver),
    target: {
      machineId,
      address: b.address,
      port: b.port,
      username: b.username,
      password: d.secrets.decrypt(b.passwordEncrypted),
      privilege: b.privilege,
      cipherSuite: b.cipherSuite,
    },
  };
}

function changedEvent(m: Tables["machines"]["$inferSelect"]): LiveEvent {
  return { type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: m.maintenance, rackId: m.rackId };
}

/**
 * Record the machine's power state. A change writes `power_state` and a `power.changed` event together and is
 * published; the same state again writes nothing. `how` says where the news came from (shown in the event).
 */
export async function setPowerState(d: Domain, machineId: number, power: PowerState, actor: Actor, how: string): Promise<boolean> {
  const store = storeOf(d);
  const live: LiveEvent[] = [];
  const changed = await store.transaction(async (tx) => {
    live.length = 0; // PostgreSQL may run the transaction again
    return applyPowerState(store, tx, machineId, power, actor, how, live);
  });
  for (const e of live) d.bus.publish(e);
  return changed;
}

/**
 * `setPowerState` inside the caller's transaction (the machine's row locked on PostgreSQL, so two processes that
 * read different states write one change after the other); the live events to publish after commit go to `live`.
 */
export async function applyPowerState(store: Store, tx: StoreTx, machineId: number, power: PowerState, actor: Actor, how: string, live: LiveEvent[]): Promise<boolean> {
  const { machines } = store.t;
  const [m] = await forUpdate(store.dialect, tx.select().from(machines).where(eq(machines.id, machineId)).limit(1));
  if (!m || m.powerState === power) return false;
  const [updated] = await tx.update(machines).set({ powerState: power, updatedAt: new Date() }).where(eq(machines.id, machineId)).returning();
  const ev = await recordStoreEvent(store, tx, {
    actor,
    machineId,
    kind: "power.changed",
    message: `Power ${m.powerState} → ${power} (${how})`,
    payload: { from: m.powerState, to: power, how },
  });
  live.push(changedEvent(updated!), { type: "event.created", event: { ...ev, machineName: m.name } });
  return true;
}

/**
 * Record the outcome of talking to a BMC. Success: reachable, last seen now, failures reset (an unreachable BMC
 * recovers by itself). Failure: one more consecutive failure; at `failureThreshold` the BMC is marked
 * unreachable with an event. Flips are published so tables and elevations update.
 */
export async function recordBmcOutcome(d: Domain, machineId: number, outcome: BmcOutcome, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { failureThreshold } = await getPowerSyncSettings(store);
  const live: LiveEvent[] = [];
  await store.transaction(async (tx) => {
    live.length = 0; // PostgreSQL may run the transaction again
    await applyBmcOutcome(store, tx, machineId, outcome, actor, failureThreshold, live);
  });
  for (const e of live) d.bus.publish(e);
}

export type BmcOutcome = { ok: true } | { ok: false; error: string };

/** `recordBmcOutcome` inside the caller's transaction; the live events to publish after commit go to `live`. */
export async function applyBmcOutcome(
  store: Store,
  tx: StoreTx,
  machineId: number,
  outcome: BmcOutcome,
  actor: Actor,
  failureThreshold: number,
  live: LiveEvent[],
): Promise<void> {
  const { bmcs, machines } = store.t;
  // The machine's row is the lock of its BMC's counters too (machines before anything else, as everywhere).
  await lockMachines(tx, [machineId]);
  const [b] = await tx.select().from(bmcs).where(eq(bmcs.machineId, machineId)).limit(1);
  if (!b) return;
  const at = live.length;
  const failures = outcome.ok ? 0 : b.consecutiveFailures + 1;
  const reachable = outcome.ok ? true : failures >= failureThreshold ? false : b.reachable;
  await tx
    .update(bmcs)
    .set({
      consecutiveFailures: failures,
      reachable,
      lastSeen: outcome.ok ? new Date() : b.lastSeen,
      lastError: outcome.ok ? null : outcome.error,
    })
    .where(eq(bmcs.machineId, machineId));
  if (reachable === b.reachable) return;
  const [m] = await tx.select().from(machines).where(eq(machines.id, machineId)).limit(1);
  if (!m) return;
  if (reachable === false || b.reachable === false) {
    const ev = await recordStoreEvent(store, tx, {
      actor,
      machineId,
      kind: reachable ? "bmc.reachable" : "bmc.unreachable",
      message: reachable ? "BMC answers again" : `BMC unreachable after ${failures} failed attempts: ${outcome.ok ? "" : outcome.error}`,
      payload: { failures },
    });
    live.push({ type: "event.created", event: { ...ev, machineName: m.name } });
  }
  live.splice(at, 0, changedEvent(m));
}
