/**
 * The hand hold on PostgreSQL (vitest project postgres only): a lease `hold:<machine>` every process sees, taken
 * with the active-job check under the machine's row lock; released only by its holder; lapsing when its process
 * died, after which the machine's stale "powering…" mark is cleared and jobs may start again.
 */
import { and, eq, sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { clearStalePowerPending } from "../operator/hand-power";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { releaseHandHold, startJob, takeHandHold } from "./job-state";

let h: Harness;
let id: number;
const busy = (job: { id: number }) => new AppError("MACHINE_BUSY", `job ${job.id} runs`);

beforeEach(async () => {
  h = createHarness();
  id = (await h.operator.machines.enroll(machineInput(1, { bmc: { driver: "fake", address: "10.63.0.1", username: "u", password: "p" } }))).id;
});
afterEach(() => h.close());

const holdRow = async () => (await h.store.db.select().from(h.store.t.leases).where(eq(h.store.t.leases.name, `hold:${id}`)))[0];

describe("hand hold across processes", () => {
  it("a hold taken by one process refuses jobs and other holds everywhere until its holder releases it", async () => {
    await takeHandHold(h.domain, id, "boot device", busy, "proc-a");
    expect((await holdRow())?.holder).toBe("bootdev@proc-a");
    await expect(startJob(h.domain, { machineId: id, kind: "power_on" }, "test")).rejects.toThrow(/changing its boot device by hand/);
    await expect(takeHandHold(h.domain, id, "power", busy, "proc-b")).rejects.toThrow(/changing its boot device by hand/);
    await releaseHandHold(h.domain, id, "proc-b"); // not its hold: nothing happens
    expect(await holdRow()).toBeDefined();
    await releaseHandHold(h.domain, id, "proc-a");
    expect(await holdRow()).toBeUndefined();
    const { jobId } = await startJob(h.domain, { machineId: id, kind: "power_on" }, "test");
    // A machine with an active job cannot be held.
    await expect(takeHandHold(h.domain, id, "power", busy, "proc-b")).rejects.toThrow(`job ${jobId} runs`);
    expect(await holdRow()).toBeUndefined();
  });

  it("a dead process's hold lapses: its stale pending mark is cleared and the machine is free again", async () => {
    await takeHandHold(h.domain, id, "power", busy, "proc-dead");
    const { db, t } = h.store;
    await db.update(t.machines).set({ powerPending: "on" }).where(eq(t.machines.id, id));
    expect(await clearStalePowerPending(h.domain)).toBe(0); // its action may still be running
    await db.execute(sql`UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = ${`hold:${id}`}`);
    expect(await clearStalePowerPending(h.domain)).toBe(1);
    expect((await db.select().from(t.machines).where(and(eq(t.machines.id, id))))[0]!.powerPending).toBeNull();
    expect(h.published).toContainEqual(expect.objectContaining({ type: "machine.changed", machineId: id }));
    await takeHandHold(h.domain, id, "power", busy, "proc-live");
    const row = await holdRow();
    expect(row).toMatchObject({ holder: "power@proc-live", epoch: 2 });
    await releaseHandHold(h.domain, id, "proc-live");
    await startJob(h.domain, { machineId: id, kind: "power_on" }, "test");
  });
});
