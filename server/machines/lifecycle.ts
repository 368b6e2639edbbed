import { eq, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { ACTION_LABELS, nextState, STATE_LABELS, type LifecycleAction, type MachineState } from "../../lib/lifecycle";
import type { EventDto, LiveEvent } from "../../lib/live-events";
import type { PowerState } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { hot } from "../db/hot";
import { storeOf, type Store, type StoreDb, type StoreTx } from "../db/store";
import { forUpdate } from "../db/sql";
import { recordEventHot } from "../events/audit";

export interface TransitionOptions {
  actor: Actor;
  /** Taken by the system on its own (sync loops, orchestrator): refused while the machine is in maintenance. */
  automatic?: boolean;
  /** Recorded as last_error on a failure; shown with the event otherwise. */
  reason?: string;
}

export interface TransitionResult {
  machineId: number;
  from: MachineState;
  to: MachineState;
}

/**
 * The only function that changes `machines.state`. Checks the lifecycle table, writes the new state and an
 * event row in one transaction, then publishes the change.
 * @throws AppError MACHINE_NOT_FOUND, INVALID_TRANSITION, MACHINE_IN_MAINTENANCE
 */
export async function transition(d: Domain, machineId: number, action: LifecycleAction, opts: TransitionOptions): Promise<TransitionResult> {
  const store = storeOf(d);
  const { result, live } = await store.transaction((tx) => applyTransition(store, tx, machineId, action, opts));
  for (const e of live) d.bus.publish(e);
  return result;
}

/**
 * The same check and write inside a caller's transaction (e.g. starting a job together with its state change).
 * The caller publishes the returned live events after its commit. The machine's row is locked first on PostgreSQL
 * (check-then-act); the checks throw before anything is written, so a caller may catch a refusal and go on.
 */
export async function applyTransition(
  store: Store,
  tx: StoreTx,
  machineId: number,
  action: LifecycleAction,
  opts: TransitionOptions,
): Promise<{ result: TransitionResult; live: LiveEvent[] }> {
  const q = statementsOf(store);
  const live: LiveEvent[] = [];
  const m = await q.machine(tx, { id: machineId });
  if (!m) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  if (opts.automatic && m.maintenance) {
    throw new AppError("MACHINE_IN_MAINTENANCE", `${m.name} is in maintenance: automatic action "${action}" refused`);
  }
  const to = nextState(m.state, action);
  if (!to) {
    throw new AppError("INVALID_TRANSITION", `${m.name}: ${ACTION_LABELS[action]} is not allowed in state ${STATE_LABELS[m.state]}`);
  }
  const lastError =
    action === "fail" || action === "abort"
      ? (opts.reason ?? `${action} in ${m.state}`)
      : action === "succeed" || action === "retry"
        ? null
        : m.lastError;
  const now = Date.now();
  const updated = await q.update(tx, { id: machineId, to, lastError, now: store.dialect === "postgres" ? new Date(now) : now });
  if (!updated) throw new AppError("MACHINE_NOT_FOUND", `Machine ${machineId} does not exist`);
  const ev: EventDto = await recordEventHot(store, tx, {
    actor: opts.actor,
    machineId,
    kind: "state.changed",
    message: `${STATE_LABELS[m.state]} → ${STATE_LABELS[to]} (${action})${opts.reason ? `: ${opts.reason}` : ""}`,
    payload: { from: m.state, to, action },
  });
  live.push(
    {
      type: "machine.changed",
      machineId,
      name: updated.name,
      state: updated.state,
      powerState: updated.powerState,
      maintenance: updated.maintenance,
      rackId: updated.rackId,
    },
    { type: "event.created", event: { ...ev, machineName: updated.name } },
  );
  return { result: { machineId, from: m.state, to }, live };
}

interface Statements {
  machine: (db: StoreDb | StoreTx, p: { id: number }) => Promise<{ name: string; state: MachineState; maintenance: boolean; lastError: string | null } | undefined>;
  update: (
    db: StoreDb | StoreTx,
    p: { id: number; to: MachineState; lastError: string | null; now: number | Date },
  ) => Promise<{ name: string; state: MachineState; powerState: PowerState; maintenance: boolean; rackId: number | null } | undefined>;
}
const statements = new WeakMap<Store, Statements>();

/**
 * The transition's two statements, prepared once per Store on SQLite (`hot`): building drizzle's SQL for every machine
 * cost more than running it (a bulk action over 10,000 machines: ~2 ms of CPU per machine, most in the query builder).
 * The machine's row is locked on PostgreSQL. `now` is the driver's timestamp value (epoch ms on SQLite, a Date on PostgreSQL).
 */
function statementsOf(store: Store): Statements {
  let s = statements.get(store);
  if (!s) {
    s = {
      machine: hot(store, "get", (db, { machines }) =>
        forUpdate(
          store.dialect,
          db
            .select({ name: machines.name, state: machines.state, maintenance: machines.maintenance, lastError: machines.lastError })
            .from(machines)
            .where(eq(machines.id, sql.placeholder("id")))
            .limit(1),
        ),
      ),
      update: hot(store, "get", (db, { machines }) =>
        db
          .update(machines)
          .set({ state: sql`${sql.placeholder("to")}`, lastError: sql`${sql.placeholder("lastError")}`, updatedAt: sql`${sql.placeholder("now")}` })
          .where(eq(machines.id, sql.placeholder("id")))
          .returning({ name: machines.name, state: machines.state, powerState: machines.powerState, maintenance: machines.maintenance, rackId: machines.rackId }),
      ),
    };
    statements.set(store, s);
  }
  return s;
}
