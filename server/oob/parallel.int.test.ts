/** 20 ipmi_sim BMCs driven in parallel, while each BMC still sees one command at a time. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import type { IpmitoolCall } from "./exec";
import { sweepPower } from "./power-sync";
import { startSims, SIM_USER, type IpmiSim } from "./testing/ipmi-sim";

const N = 20;
let h: Harness;
let sims: IpmiSim[] = [];
const calls: IpmitoolCall[] = [];
const ids: number[] = [];

beforeAll(async () => {
  sims = await startSims(N, "par");
  h = createHarness({ oob: { callTimeoutMs: 8000, attempts: 2, backoffMs: 100, spacingMs: 20 }, observe: (c) => calls.push(c) });
  for (const [i, s] of sims.entries()) {
    ids.push((await h.operator.machines.enroll(machineInput(i + 1, { bmc: { address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password } }))).id);
  }
}, 60_000);
afterAll(async () => {
  h?.close();
  await Promise.all(sims.map((s) => s.stop()));
});

it("powers on 20 machines at once, with checks and a sweep racing on the same BMCs, one command per BMC at a time", async () => {
  const [power, checks, sweep] = await Promise.all([
    h.operator.oob.power({ selection: { ids }, action: "on" }),
    Promise.all(ids.map((id) => h.operator.oob.checkBmc({ id }))),
    sweepPower(h.domain, 20),
  ]);
  expect(power.filter((r) => !r.ok)).toEqual([]);
  expect(power.every((r) => r.powerState === "on")).toBe(true);
  expect(checks.every((c) => c.reachable)).toBe(true);
  expect(sweep).toMatchObject({ machines: N, failed: 0 });
  for (const s of sims) expect(s.power()).toBe("on");

  // Per BMC: no two ipmitool processes overlapped, and consecutive ones were at least the spacing apart.
  const byKey = new Map<string, IpmitoolCall[]>();
  for (const c of calls) byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
  expect(byKey.size).toBe(N);
  for (const list of byKey.values()) {
    list.sort((x, y) => x.startedAt - y.startedAt);
    for (let i = 1; i < list.length; i++) expect(list[i]!.startedAt).toBeGreaterThanOrEqual(list[i - 1]!.endedAt);
  }
  // Across BMCs the work did run in parallel.
  const events = calls.flatMap((c) => [[c.startedAt, 1] as const, [c.endedAt, -1] as const]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let live = 0;
  let peak = 0;
  for (const [, d] of events) peak = Math.max(peak, (live += d));
  expect(peak).toBeGreaterThan(4);
}, 60_000);
