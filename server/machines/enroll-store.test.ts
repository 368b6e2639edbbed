import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { machineEnrollSchema } from "../../lib/schemas";
import { machineInput, rejectsAppError } from "../testing/fixtures";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { getMachine } from "./detail";
import { deleteMachine, enrollMachine, setMaintenance, updateMachine } from "./enroll";

// Enrollment, edits and deletion on the Store: run on SQLite and on PostgreSQL (STORE_SLICE in vitest.config.ts).
let h: Harness;
let n = 100;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

const input = (k: number, o: Parameters<typeof machineInput>[1] = {}) => machineEnrollSchema.parse(machineInput(k, o));
const countWhere = async (name: string) => {
  const { machines } = h.store.t;
  return (await h.store.db.select({ n: count() }).from(machines).where(eq(machines.name, name)))[0]!.n;
};

/** Start `k` enrollments at once; the outcomes in order (an AppError, or the id). */
async function race(inputs: ReturnType<typeof input>[]): Promise<(AppError | number)[]> {
  return Promise.all(
    inputs.map((i) =>
      enrollMachine(h.domain, i, "user:test").then(
        (r) => r.id,
        (err: unknown) => {
          if (err instanceof AppError) return err;
          throw err;
        },
      ),
    ),
  );
}

describe(`enrollment races on ${testStoreKind()}`, () => {
  it.each([
    ["the same MAC", (a: number, b: number) => [input(a), input(b, { bootMac: input(a).bootMac })], "bootMac", /MAC 52:54:00:00:\S+ belongs to node-/],
    ["the same name", (a: number, b: number) => [input(a), input(b, { name: input(a).name })], "name", /A machine named node-\S+ already exists/],
    ["the same IP", (a: number, b: number) => [input(a), input(b, { ip: input(a).ip })], "ip", /IP 10\.0\.\S+ belongs to node-/],
  ] as const)("%s: one wins, the others get SQLite's CONFLICT on the field, nothing half-written", async (_what, make, field, message) => {
    const a = ++n;
    const all = [make(a, ++n)[0]!, ...Array.from({ length: 4 }, () => make(a, ++n)[1]!)];
    const results = await race(all);
    const won = results.filter((r) => typeof r === "number");
    const lost = results.filter((r): r is AppError => r instanceof AppError);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(4);
    for (const e of lost) {
      expect(e.code).toBe("CONFLICT");
      expect(e.message).toMatch(message);
      expect(e.details.map((d) => d.field)).toContain(field);
    }
    // Whichever won, the losers left no machine behind.
    let rows = 0;
    for (const name of new Set(all.map((i) => i.name))) rows += await countWhere(name);
    expect(rows).toBe(1);
  });

  it("an edit racing an enrollment for the same MAC ends in one owner and a CONFLICT", async () => {
    const { id } = await enrollMachine(h.domain, input(++n), "user:test");
    const mac = input(++n).bootMac;
    const [edit, enroll] = await Promise.allSettled([
      updateMachine(h.domain, { id, bootMac: mac }, "user:test"),
      enrollMachine(h.domain, input(++n, { bootMac: mac }), "user:test"),
    ]);
    const outcomes = [edit.status, enroll.status].sort();
    expect(outcomes).toEqual(["fulfilled", "rejected"]);
    const failed = (edit.status === "rejected" ? edit.reason : (enroll as PromiseRejectedResult).reason) as AppError;
    expect(failed).toBeInstanceOf(AppError);
    expect(failed.code).toBe("CONFLICT");
    const { nics } = h.store.t;
    expect((await h.store.db.select({ n: count() }).from(nics).where(eq(nics.mac, mac)))[0]!.n).toBe(1);
  });
});

describe(`edits and deletion on ${testStoreKind()}`, () => {
  it("keeps hostile text in its field, refuses unknown machines, and deletes only idle ones", async () => {
    const { id } = await enrollMachine(h.domain, input(++n), "user:test");
    const reason = "disk 'A'; $(reboot) & \\ .. \r\n ünï ✓ SELECT * FROM machines;";
    await setMaintenance(h.domain, id, true, reason, "user:test");
    const { machines } = h.store.t;
    expect((await h.store.db.select().from(machines).where(eq(machines.id, id)))[0]).toMatchObject({ maintenance: true, maintenanceReason: reason });
    await rejectsAppError(setMaintenance(h.domain, 999_999, true, undefined, "user:test"), "MACHINE_NOT_FOUND");
    await rejectsAppError(updateMachine(h.domain, { id: 999_999, name: "x" }, "user:test"), "MACHINE_NOT_FOUND");
    await rejectsAppError(deleteMachine(h.domain, 999_999, "user:test"), "MACHINE_NOT_FOUND");
    await deleteMachine(h.domain, id, "user:test");
    expect((await h.store.db.select().from(machines).where(eq(machines.id, id))).length).toBe(0);
  });
});

describe(`detail and summary on ${testStoreKind()}`, () => {
  it("gives a machine's row, boot NIC, rack and BMC without its password, and counts the fleet", async () => {
    const rack = await h.operator.racks.create({ name: "detail-rack", heightU: 42 });
    const bmc = { driver: "ipmitool" as const, address: "10.77.0.9", port: 623, username: "admin", password: "s3cret'\"$(x)", privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
    const { id } = await enrollMachine(h.domain, input(++n, { rackId: rack.id, uPosition: 5, bmc }), "user:test");
    const before = await h.viewer.machines.summary();
    const m = await h.viewer.machines.get({ id });
    expect(m).toMatchObject({ id, rackId: rack.id, rackName: "detail-rack", uPosition: 5, state: "enrolled", maintenance: false, bmcLastSeen: null, bootSeenAt: null });
    expect(m.nics).toEqual([expect.objectContaining({ mac: m.bootMac, ip: m.ip, isBoot: true })]);
    expect(m.bmc).toMatchObject({ address: "10.77.0.9", username: "admin", hasPassword: true, lastSeen: null });
    expect(JSON.stringify(m)).not.toContain("s3cret");
    expect(m.allowedActions).toContain("manage");
    await setMaintenance(h.domain, id, true, "x", "user:test");
    const after = await h.viewer.machines.summary();
    expect(after.maintenance).toBe(before.maintenance + 1);
    expect(after.total).toBe(before.total);
    expect(after.byState.reduce((s, r) => s + r.n, 0)).toBe(after.total);
    await rejectsAppError(getMachine(h.store, 999_999), "MACHINE_NOT_FOUND");
  });
});
