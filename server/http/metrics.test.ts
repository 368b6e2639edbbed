/** The process label of /metrics: on every series when several processes share a database, absent otherwise. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "../testing/harness";
import { createMetrics } from "./metrics";

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(() => h.close());

describe("metrics labels", () => {
  it("labels every series with the process when given one, and none without", async () => {
    const shared = await createMetrics(h.db, "host-a:42").registry.metrics();
    const series = shared.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(series.length).toBeGreaterThan(10);
    for (const l of series) expect(l).toMatch(/\{[^}]*process="host-a:42"[^}]*\} /);
    const alone = await createMetrics(h.db).registry.metrics();
    expect(alone).not.toContain("process=");
    expect(alone).toMatch(/^process_cpu_user_seconds_total\{app="rackhand"\} \d/m);
  });
});
