/** The process label of /metrics: on every series when several processes share a database, absent otherwise. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { createMetrics } from "./metrics";

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(() => h.close());

describe("metrics labels", () => {
  it("labels every series with the process when given one, and none without", async () => {
    const shared = await createMetrics(h.store, "host-a:42").registry.metrics();
    const series = shared.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(series.length).toBeGreaterThan(10);
    for (const l of series) expect(l).toMatch(/\{[^}]*process="host-a:42"[^}]*\} /);
    const alone = await createMetrics(h.store).registry.metrics();
    expect(alone).not.toContain("process=");
    expect(alone).toMatch(/^process_cpu_user_seconds_total\{app="rackhand"\} \d/m);
  });

  it("counts machines by lifecycle state and by power state from the database, at every scrape", async () => {
    const m = createMetrics(h.store);
    for (let n = 1; n <= 3; n++) await h.operator.machines.enroll(machineInput(n));
    let text = await m.registry.metrics();
    expect(text).toMatch(/^rackhand_machines\{state="enrolled",app="rackhand"\} 3$/m);
    expect(text).toMatch(/^rackhand_machines_power\{power="unknown",app="rackhand"\} 3$/m);
    await h.operator.machines.enroll(machineInput(4));
    text = await m.registry.metrics();
    expect(text).toMatch(/^rackhand_machines\{state="enrolled",app="rackhand"\} 4$/m);
  });
});
