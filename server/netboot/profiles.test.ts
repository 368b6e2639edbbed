/**
 * OS profiles through their router, on both stores (vitest projects `sqlite` and `postgres`): create, list with the
 * machines using each, rename checks, update, delete refused while a machine deploys with it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectTrpcError } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { addMachine, setMachine } from "../testing/planning-fixture";

let h: Harness;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("OS profiles on the Store", () => {
  it("creates, counts machines, refuses a taken name, updates, and deletes only when no machine deploys with it", async () => {
    const image = { kind: "image" as const, osFamily: "debian" as const, imageUrl: "http://10.0.0.1/a.raw.gz", imageSha256: "ab".repeat(32), imageFormat: "raw.gz" as const };
    const { id: a } = await h.operator.osProfiles.create({ name: "prof-a", ...image });
    const { id: b } = await h.operator.osProfiles.create({ name: "prof-b", ...image, options: { rootPartition: "/dev/vda2" } });
    await expectTrpcError(h.operator.osProfiles.create({ name: "prof-a", ...image }), "CONFLICT", "CONFLICT");
    await expectTrpcError(h.operator.osProfiles.update({ id: b, name: "prof-a", ...image }), "CONFLICT", "CONFLICT");
    await expectTrpcError(h.operator.osProfiles.update({ id: b + 1000, name: "prof-x", ...image }), "NOT_FOUND");
    await expectTrpcError(h.viewer.osProfiles.create({ name: "prof-v", ...image }), "FORBIDDEN");
    const m = await addMachine(h, { name: "prof-user", bootMac: "52:54:00:a5:00:01", osProfileId: a });
    const list = await h.viewer.osProfiles.list();
    expect(list.map((p) => [p.name, p.machineCount])).toEqual([
      ["prof-a", 1],
      ["prof-b", 0],
    ]);
    expect(list[1]!.options).toMatchObject({ rootPartition: "/dev/vda2" });
    await h.operator.osProfiles.update({ id: b, name: "prof-b2", ...image });
    expect((await h.viewer.osProfiles.list()).map((p) => p.name)).toEqual(["prof-a", "prof-b2"]);
    await setMachine(h, m, { state: "deploying" });
    const busy = await expectTrpcError(h.operator.osProfiles.delete({ id: a }), "CONFLICT");
    expect(busy.error.message).toBe("prof-user is deploying with prof-a; wait or abort first");
    await setMachine(h, m, { state: "deployed" });
    await h.operator.osProfiles.delete({ id: a });
    await h.operator.osProfiles.delete({ id: b });
    expect(await h.viewer.osProfiles.list()).toEqual([]);
    const { events } = h.store.t;
    const kinds = (await h.store.db.select({ kind: events.kind }).from(events)).map((e) => e.kind);
    expect(kinds.filter((k) => k.startsWith("os-profile.")).sort()).toEqual(["os-profile.created", "os-profile.created", "os-profile.deleted", "os-profile.deleted", "os-profile.updated"]);
  });
});
