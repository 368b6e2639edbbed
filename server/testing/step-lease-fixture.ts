import { inArray } from "drizzle-orm";
import { afterEach, beforeEach } from "vitest";
import { Orchestrator } from "../orchestrator/orchestrator";
import type { MachinePorts } from "../orchestrator/ports";
import { machineInput } from "./fixtures";
import { createHarness, type Harness } from "./harness";

/**
 * What the step-lease tests share (server/orchestrator/step-leases*.test.ts): a harness per test, orchestrators
 * stopped after it, ports that count their calls, machines enrolled (and mirrored into the PostgreSQL store).
 * Power jobs move no lifecycle state, which server/machines (not on the Store yet) would write.
 */
export function stepLeaseFixture() {
  let h: Harness;
  const engines: Orchestrator[] = [];
  beforeEach(() => {
    h = createHarness();
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((o) => o.stop()));
    h.close();
  });
  return {
    /** The current test's harness. */
    get h(): Harness {
      return h;
    },
    /** Ports that count each call per machine (and may be told to hang). */
    countingPorts(calls: Map<string, number>, hang: (m: number) => boolean = () => false): MachinePorts {
      const note = (what: string, m: number) => {
        calls.set(`${what}:${m}`, (calls.get(`${what}:${m}`) ?? 0) + 1);
        return hang(m) ? new Promise<void>(() => {}) : Promise.resolve();
      };
      return {
        setBootTarget: (m) => note("target", m),
        setBootDevice: (m) => note("device", m),
        powerOn: (m) => note("on", m),
        powerCycle: (m) => note("cycle", m),
        powerOff: (m) => note("off", m),
      };
    },
    /** An orchestrator on the harness's domain as process `owner`, stopped after the test. */
    engine(ports: MachinePorts, owner: string, leaseMs = 15_000, tickMs = 100): Orchestrator {
      const o = new Orchestrator(h.domain, ports, { tickMs, owner, leaseMs });
      engines.push(o);
      return o;
    },
    /** Not stopped after the test (a process that "died" with a step hanging). */
    forget(o: Orchestrator): void {
      engines.splice(engines.indexOf(o), 1);
    },
    async machines(n: number): Promise<number[]> {
      const ids: number[] = [];
      for (let i = 1; i <= n; i++) ids.push((await h.operator.machines.enroll(machineInput(i))).id);
      return ids;
    },
    async jobStates(ids: number[]): Promise<string[]> {
      const { db, t } = h.store;
      return (await db.select({ state: t.jobs.state }).from(t.jobs).where(inArray(t.jobs.id, ids))).map((j) => j.state);
    },
  };
}
