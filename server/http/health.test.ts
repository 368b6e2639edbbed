/** /healthz's report on both databases (vitest projects sqlite and postgres): roles and what the process holds. */
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { takeHandHold } from "../orchestrator/job-state";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { health } from "./health";

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(() => h.close());

describe("health", () => {
  it("names the database and this process; on PostgreSQL lists what it holds and nothing of others'", async () => {
    const report = await health(h.store, "host-a:1");
    expect(report).toMatchObject({ status: "ok", store: h.store.dialect, process: "host-a:1" });
    if (h.store.dialect === "sqlite") {
      expect(report.roles).toEqual(["all (single process)"]);
      return;
    }
    expect(report).toMatchObject({ roles: ["api", "orchestrator"], leases: { netboot: [], bmcSweeps: 0, handHolds: 0, consoles: 0 }, leasedSteps: 0 });
    const { id } = await h.operator.machines.enroll(machineInput(1));
    await takeHandHold(h.domain, id, "power", () => new AppError("MACHINE_BUSY", "busy"), "host-a:1");
    await h.store.db.execute(sql`INSERT INTO leases (name, holder, epoch, expires_at) VALUES
      ('netboot:prov0', 'host-a:1', 1, clock_timestamp() + interval '1 minute'),
      ('sweep:1', 'host-a:1', 1, clock_timestamp() + interval '1 minute'),
      ('sweep:2', 'host-b:2', 1, clock_timestamp() + interval '1 minute'),
      ('console:1', 'host-b:2', 1, clock_timestamp() + interval '1 minute'),
      ('keyboard:1', 'host-b:2|v1|bob', 1, clock_timestamp() + interval '1 minute'),
      ('netboot:prov1', 'host-a:1', 1, clock_timestamp() - interval '1 second')`);
    const busy = await health(h.store, "host-a:1");
    expect(busy).toMatchObject({ roles: ["api", "orchestrator", "netboot leader (prov0)", "power sync"], leases: { netboot: ["prov0"], bmcSweeps: 1, handHolds: 1, consoles: 0 } });
    const b = await health(h.store, "host-b:2");
    expect(b.leases).toEqual({ netboot: [], bmcSweeps: 1, handHolds: 0, consoles: 1 });
    expect(b.roles).toEqual(["api", "orchestrator", "power sync", "serial consoles"]);
  });
});
