import { and, count, desc, eq, sql } from "drizzle-orm";
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
import { createHarness, type Harness } from "../testing/harness";
import { machineInput, rejectsAppError } from "../testing/fixtures";
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

async function newMachine(): Promise<number> {
  n++;
  return (await enrollMachine(h.domain, machineEnrollSchema.parse(machineInput(n)), "user:test")).id;
}

/** A fresh machine driven into `state` through transition() only. */
async function machineIn(state: MachineState): Promise<number> {
  const id = await newMachine();
  for (const action of PATHS.get(state)!) await transition(h.domain, id, action, { actor: "user:test" });
  expect((await machineRow(id)).state).toBe(state);
  return id;
}

async function machineRow(id: number) {
  const { machines } = h.store.t;
  return (await h.store.db.select().from(machines).where(eq(machines.id, id)))[0]!;
}

async function eventCount(id: number, kind?: string): Promise<number> {
  const { events } = h.store.t;
  const [r] = await h.store.db
    .select({ n: count() })
    .from(events)
    .where(and(eq(events.machineId, id), kind ? eq(events.kind, kind) : undefined));
  return r!.n;
}

async function lastEvent(id: number) {
  const { events } = h.store.t;
  return (await h.store.db.select().from(events).where(eq(events.machineId, id)).orderBy(desc(events.id)).limit(1))[0];
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
  it.each(TRANSITIONS.map((t) => [t.from, t.action, t.to] as const))("%s --%s--> %s", async (from, action, to) => {
    const id = await machineIn(from);
    const before = await eventCount(id);
    const published = h.published.length;

    const r = await transition(h.domain, id, action, { actor: "user:alice" });

    expect(r).toEqual({ machineId: id, from, to });
    expect((await machineRow(id)).state).toBe(to);
    expect(await eventCount(id)).toBe(before + 1);
    const ev = (await lastEvent(id))!;
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
  const inState = async (s: MachineState) => {
    if (!machineByState.has(s)) machineByState.set(s, await machineIn(s));
    return machineByState.get(s)!;
  };

  it.each(ILLEGAL.map((x) => [x.state, x.action] as const))("%s refuses %s", async (state, action) => {
    const id = await inState(state);
    const before = { row: await machineRow(id), events: await eventCount(id), published: h.published.length };

    const err = await rejectsAppError(transition(h.domain, id, action, { actor: "user:test", reason: "x" }), "INVALID_TRANSITION");

    expect(err.message.toLowerCase()).toContain(action);
    const after = await machineRow(id);
    expect(after.state).toBe(state);
    expect(after.lastError).toBe(before.row.lastError);
    expect(after.updatedAt).toEqual(before.row.updatedAt);
    expect(await eventCount(id)).toBe(before.events);
    expect(h.published.length).toBe(before.published);
  });
});

describe("transition()", () => {
  it("stamps updated_at with the time of the change, as a timestamp of either store, and returns from and to", async () => {
    const id = await newMachine();
    const before = Date.now();
    const r = await transition(h.domain, id, "manage", { actor: "user:test" });
    const row = await machineRow(id);
    expect(r).toEqual({ machineId: id, from: "enrolled", to: "manageable" });
    expect(row.updatedAt).toBeInstanceOf(Date);
    expect(row.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(row.updatedAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(row.lastError).toBeNull();
  });

  it("throws MACHINE_NOT_FOUND for an unknown machine", async () => {
    await rejectsAppError(transition(h.domain, 999_999, "manage", { actor: "user:test" }), "MACHINE_NOT_FOUND");
  });

  it("writes state and event in one transaction: a failing event insert leaves the state unchanged", async () => {
    const id = await machineIn("enrolled");
    const stmts =
      h.store.dialect === "postgres"
        ? [
            "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'events refused by test'; END $$",
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events()",
          ]
        : ["CREATE TEMP TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'events refused by test'); END"];
    const exec = async (q: string) => (h.store.dialect === "postgres" ? void (await h.store.db.execute(sql.raw(q))) : h.db.$client.exec(q));
    for (const q of stmts) await exec(q);
    try {
      const err = (await transition(h.domain, id, "manage", { actor: "user:test" }).catch((e: unknown) => e)) as Error & { cause?: Error };
      expect(`${err.message} ${err.cause?.message ?? ""}`).toMatch(/events refused by test/);
    } finally {
      await exec(h.store.dialect === "postgres" ? "DROP TRIGGER refuse_events ON events" : "DROP TRIGGER refuse_events");
    }
    expect((await machineRow(id)).state).toBe("enrolled");
    // And it works again once events can be written.
    expect((await transition(h.domain, id, "manage", { actor: "user:test" })).to).toBe("manageable");
  });
});

describe("maintenance", () => {
  it("refuses automatic actions while the flag is on, and allows operator actions", async () => {
    const id = await machineIn("deploying");
    await setMaintenance(h.domain, id, true, "disk swap", "user:test");
    const events = await eventCount(id);

    for (const action of ["succeed", "fail", "abort"] as const) {
      await rejectsAppError(transition(h.domain, id, action, { actor: "system", automatic: true }), "MACHINE_IN_MAINTENANCE");
    }
    expect((await machineRow(id)).state).toBe("deploying");
    expect(await eventCount(id)).toBe(events);

    // An operator may still act on a machine in maintenance.
    expect((await transition(h.domain, id, "abort", { actor: "user:op" })).to).toBe("deploy_failed");
    expect((await machineRow(id)).maintenance).toBe(true);

    await setMaintenance(h.domain, id, false, undefined, "user:test");
    expect((await transition(h.domain, id, "retry", { actor: "system", automatic: true })).to).toBe("deploying");
  });

  it("lets automatic actions through when the flag is off", async () => {
    const id = await machineIn("inspecting");
    expect((await transition(h.domain, id, "succeed", { actor: "system", automatic: true })).to).toBe("available");
  });
});

describe("last_error", () => {
  it("fail records the reason; retry clears it", async () => {
    const id = await machineIn("deploying");
    await transition(h.domain, id, "fail", { actor: "system", reason: "image checksum mismatch" });
    expect(await machineRow(id)).toMatchObject({ state: "deploy_failed", lastError: "image checksum mismatch" });
    const ev = (await lastEvent(id))!;
    expect(ev.message).toContain("image checksum mismatch");
    await transition(h.domain, id, "retry", { actor: "user:test" });
    expect(await machineRow(id)).toMatchObject({ state: "deploying", lastError: null });
  });

  it("fail and abort without a reason still record what happened", async () => {
    const a = await machineIn("cleaning");
    await transition(h.domain, a, "fail", { actor: "system" });
    expect((await machineRow(a)).lastError).toMatch(/fail/);
    const b = await machineIn("inspecting");
    await transition(h.domain, b, "abort", { actor: "user:test" });
    expect((await machineRow(b)).state).toBe("inspect_failed");
    expect((await machineRow(b)).lastError).toMatch(/abort/);
  });

  it("abort records the reason; succeed after retry clears it", async () => {
    const id = await machineIn("cleaning");
    await transition(h.domain, id, "abort", { actor: "user:test", reason: "wrong rack" });
    expect((await machineRow(id)).lastError).toBe("wrong rack");
    await transition(h.domain, id, "retry", { actor: "user:test" });
    expect((await machineRow(id)).lastError).toBeNull();
    await transition(h.domain, id, "fail", { actor: "system", reason: "disk gone" });
    await transition(h.domain, id, "retry", { actor: "user:test" });
    // succeed also clears whatever was left.
    await h.store.db.update(h.store.t.machines).set({ lastError: "stale" }).where(eq(h.store.t.machines.id, id));
    await transition(h.domain, id, "succeed", { actor: "system" });
    expect(await machineRow(id)).toMatchObject({ state: "available", lastError: null });
  });

  it("a refused transition does not touch last_error", async () => {
    const id = await machineIn("deploy_failed");
    const before = (await machineRow(id)).lastError;
    expect(before).not.toBeNull();
    await rejectsAppError(transition(h.domain, id, "fail", { actor: "system", reason: "other" }), "INVALID_TRANSITION");
    expect((await machineRow(id)).lastError).toBe(before);
    expect(await eventCount(id, "state.changed")).toBe(PATHS.get("deploy_failed")!.length);
  });
});
