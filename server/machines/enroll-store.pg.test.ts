import { afterAll, beforeAll, expect, it } from "vitest";
import { machineEnrollSchema } from "../../lib/schemas";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { enrollMachine } from "./enroll";

// PostgreSQL only: what the machines slice cannot do there yet, refused with a clear error and nothing written.
let h: Harness;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

it("refuses an enrollment into a subnet (server/subnets is not on the Store yet) and writes nothing", async () => {
  const input = machineEnrollSchema.parse(machineInput(1, { network: { subnetId: 1, addressMode: "auto" } }));
  await expect(enrollMachine(h.domain, input, "user:test")).rejects.toThrow(/subnet allocation at enrollment .* is not converted to the Store yet: it cannot run on PostgreSQL/);
  expect(await h.store.db.select().from(h.store.t.machines)).toEqual([]);
  // Without a subnet it enrolls.
  await expect(enrollMachine(h.domain, machineEnrollSchema.parse(machineInput(2)), "user:test")).resolves.toMatchObject({ id: expect.any(Number) });
});
