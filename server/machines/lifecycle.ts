import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { ACTION_LABELS, nextState, STATE_LABELS, type LifecycleAction, type MachineState } from "../../lib/lifecycle";
import type { EventDto, LiveEvent } from "../../lib/live-events";
import type { Actor, Domain } from "../context";
import { machines } from "../db/schema";
import { recordEvent } from "../events/audit";

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

type Tx = Parameters<Parameters<Domain["db"]["transaction"]>[0]>[0];

/**
 * The only function that changes `machines.state`. Checks the lifecycle table, writes the new state and an
 * event row in one transaction, then publishes the change.
 * @throws AppError MACHINE_NOT_FOUND, INVALID_TRANSITION, MACHINE_IN_MAINTENANCE
 */
export function transition(d: Domain, machineId: number, action: LifecycleAction, opts: TransitionOptions): TransitionResult {
  const { result, live } = d.db.transaction((tx) => applyTransition(tx, machineId, action, opts));
  for (const e of live) d.bus.publish(e);
  return result;
}

/**
 * The same check and write inside a caller's transaction (e.g. starting a job together with its state change).
 * The caller publishes the returned live events after its commit.
 */
export function applyTransition(
  tx: Tx,
  machineId: number,
  action: LifecycleAction,
  opts: TransitionOptions,
): { result: TransitionResult; live: LiveEvent[] } {
  const live: LiveEvent[] = [];
  const m = tx.select().from(machines).where(eq(machines.id, machineId)).get();
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
  const updated = tx.update(machines).set({ state: to, lastError, updatedAt: new Date() }).where(eq(machines.id, machineId)).returning().get();
  const ev: EventDto = recordEvent(tx, {
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
