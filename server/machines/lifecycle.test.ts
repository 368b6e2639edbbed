import { and, count, desc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LIFECYCLE_ACTIONS,
  MACHINE_STATES,
  nextState,
  TRANSITIONS,
  type LifecycleAction,
  type MachineState,
} from "../../lib/lifecycle";
import { machineEnrollSchema } from "../../lib/schemas";
import { events, machines } from "../db/schema";
import { createHarness, type Harness } from "../testing/harness";
import { expectAppError, machineInput } from "../testing/fixtures";
import { enrollMachine, setMaintenance } from "./enroll";
import { transition } from "./lifecycle";

/** Shortest action path from "enrolled" to every state, by BFS over the lifecycle table. */
function pathsFromEnrolled(): Map<MachineState, LifecycleAction[]> {
  const paths = new Map<MachineState, LifecycleAction[]>([["enrolled", []]]);
  const queue: MachineState[] = ["enrolled"];
  while (queue.length) {
    const s = queue.shift()!;
    for (const t of TRANSITIONS) {
      if (t.from === s && !paths.has(t.to)) {
        paths.set(t.to, [...paths.get(s)!, t.action]);
        queue.push(t.to);
      }
    }
  }
  return paths;
}

const PATHS = pathsFromEnrolled();
const ILLEGAL = MACHINE_STATES.flatMap((state) =>
  LIFECYCLE_ACTIONS.filter((action) => nextState(state, action) === null).map((action) => ({ state, action })),
);

let h: Harness;
let n = 0;

function newMachine(): number {
  n++;
  return enrollMachine(h.domain, machineEnrollSchema.parse(machineInput(n)), "user:test").id;
}

/** A fresh machine driven into `state` through transition() only. */
function machineIn(state: MachineState): number {
  const id = newMachine();
  for (const action of PATHS.get(state)!) transition(h.domain, id, action, { actor: "user:test" });
  expect(machineRow(id).state).toBe(state);
  return id;
}

function machineRow(id: number) {
  return h.db.select().from(machines).where(eq(machines.id, id)).get()!;
}

function eventCount(id: number): number {
  return h.db.select({ n: count() }).from(events).where(eq(events.machineId, id)).get()!.n;
}

function lastEvent(id: number) {
  return h.db.select().from(events).where(eq(events.machineId, id)).orderBy(desc(events.id)).limit(1).get();
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("paths computed from the table", () => {
  it("reach every state", () => {
    expect([...PATHS.keys()].sort()).toEqual([...MACHINE_STATES].sort());
  });
  it("leave a non-trivial set of illegal pairs to check", () => {
    expect(ILLEGAL.length).toBe(MACHINE_STATES.length * LIFECYCLE_ACTIONS.length - TRANSITIONS.length);
    expect(ILLEGAL.length).toBeGreaterThan(50);
  });
});

describe("every allowed transition", () => {
  it.each(TRANSITIONS.map((t) => [t.from, t.action, t.to] as const))("%s --%s--> %s", (from, action, to) => {
    const id = machineIn(from);
    const before = eventCount(id);
    const published = h.published.length;

    const r = transition(h.domain, id, action, { actor: "user:alice" });

    expect(r).toEqual({ machineId: id, from, to });
    expect(machineRow(id).state).toBe(to);
    expect(eventCount(id)).toBe(before + 1);
    const ev = lastEvent(id)!;
    expect(ev.kind).toBe("state.changed");
    expect(ev.actor).toBe("user:alice");
    expect(ev.payload).toEqual({ from, to, action });
    // Published after commit: the fleet sees the new state and the event.
    const live = h.published.slice(published);
    expect(live).toContainEqual(expect.objectContaining({ type: "machine.changed", machineId: id, state: to }));
    expect(live).toContainEqual(expect.objectContaining({ type: "event.created", event: expect.objectContaining({ id: ev.id }) }));
  });
});

describe("every illegal (state, action) pair", () => {
  const machineByState = new Map<MachineState, number>();
  const inState = (s: MachineState) => {
    if (!machineByState.has(s)) machineByState.set(s, machineIn(s));
    return machineByState.get(s)!;
  };

  it.each(ILLEGAL.map((x) => [x.state, x.action] as const))("%s refuses %s", (state, action) => {
    const id = inState(state);
    const before = { row: machineRow(id), events: eventCount(id), published: h.published.length };

    const err = expectAppError(() => transition(h.domain, id, action, { actor: "user:test", reason: "x" }), "INVALID_TRANSITION");

    expect(err.message.toLowerCase()).toContain(action);
    const after = machineRow(id);
    expect(after.state).toBe(state);
    expect(after.lastError).toBe(before.row.lastError);
    expect(after.updatedAt).toEqual(before.row.updatedAt);
    expect(eventCount(id)).toBe(before.events);
    expect(h.published.length).toBe(before.published);
  });
});

describe("transition()", () => {
  it("throws MACHINE_NOT_FOUND for an unknown machine", () => {
    expectAppError(() => transition(h.domain, 999_999, "manage", { actor: "user:test" }), "MACHINE_NOT_FOUND");
  });

  it("writes state and event in one transaction: a failing event insert leaves the state unchanged", () => {
    const id = machineIn("enrolled");
    h.db.$client.exec(
      "CREATE TEMP TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'events refused by test'); END;",
    );
    try {
      expect(() => transition(h.domain, id, "manage", { actor: "user:test" })).toThrow(/events refused by test/);
    } finally {
      h.db.$client.exec("DROP TRIGGER refuse_events");
    }
    expect(machineRow(id).state).toBe("enrolled");
    // And it works again once events can be written.
    expect(transition(h.domain, id, "manage", { actor: "user:test" }).to).toBe("manageable");
  });
});

describe("maintenance", () => {
  it("refuses automatic actions while the flag is on, and allows operator actions", () => {
    const id = machineIn("deploying");
    setMaintenance(h.domain, id, true, "disk swap", "user:test");
    const events = eventCount(id);

    for (const action of ["succeed", "fail", "abort"] as const) {
      expectAppError(() => transition(h.domain, id, action, { actor: "system", automatic: true }), "MACHINE_IN_MAINTENANCE");
    }
    expect(machineRow(id).state).toBe("deploying");
    expect(eventCount(id)).toBe(events);

    // An operator may still act on a machine in maintenance.
    expect(transition(h.domain, id, "abort", { actor: "user:op" }).to).toBe("deploy_failed");
    expect(machineRow(id).maintenance).toBe(true);

    setMaintenance(h.domain, id, false, undefined, "user:test");
    expect(transition(h.domain, id, "retry", { actor: "system", automatic: true }).to).toBe("deploying");
  });

  it("lets automatic actions through when the flag is off", () => {
    const id = machineIn("inspecting");
    expect(transition(h.domain, id, "succeed", { actor: "system", automatic: true }).to).toBe("available");
  });
});

describe("last_error", () => {
  it("fail records the reason; retry clears it", () => {
    const id = machineIn("deploying");
    transition(h.domain, id, "fail", { actor: "system", reason: "image checksum mismatch" });
    expect(machineRow(id)).toMatchObject({ state: "deploy_failed", lastError: "image checksum mismatch" });
    const ev = lastEvent(id)!;
    expect(ev.message).toContain("image checksum mismatch");
    transition(h.domain, id, "retry", { actor: "user:test" });
    expect(machineRow(id)).toMatchObject({ state: "deploying", lastError: null });
  });

  it("fail and abort without a reason still record what happened", () => {
    const a = machineIn("cleaning");
    transition(h.domain, a, "fail", { actor: "system" });
    expect(machineRow(a).lastError).toMatch(/fail/);
    const b = machineIn("inspecting");
    transition(h.domain, b, "abort", { actor: "user:test" });
    expect(machineRow(b).state).toBe("inspect_failed");
    expect(machineRow(b).lastError).toMatch(/abort/);
  });

  it("abort records the reason; succeed after retry clears it", () => {
    const id = machineIn("cleaning");
    transition(h.domain, id, "abort", { actor: "user:test", reason: "wrong rack" });
    expect(machineRow(id).lastError).toBe("wrong rack");
    transition(h.domain, id, "retry", { actor: "user:test" });
    expect(machineRow(id).lastError).toBeNull();
    transition(h.domain, id, "fail", { actor: "system", reason: "disk gone" });
    transition(h.domain, id, "retry", { actor: "user:test" });
    // succeed also clears whatever was left.
    h.db.update(machines).set({ lastError: "stale" }).where(eq(machines.id, id)).run();
    transition(h.domain, id, "succeed", { actor: "system" });
    expect(machineRow(id)).toMatchObject({ state: "available", lastError: null });
  });

  it("a refused transition does not touch last_error", () => {
    const id = machineIn("deploy_failed");
    const before = machineRow(id).lastError;
    expect(before).not.toBeNull();
    expectAppError(() => transition(h.domain, id, "fail", { actor: "system", reason: "other" }), "INVALID_TRANSITION");
    expect(machineRow(id).lastError).toBe(before);
    expect(
      h.db.select({ n: count() }).from(events).where(and(eq(events.machineId, id), eq(events.kind, "state.changed"))).get()!.n,
    ).toBe(PATHS.get("deploy_failed")!.length);
  });
});
