import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { machineEnrollSchema } from "../../lib/schemas";
import { expectTrpcError, machineInput } from "../testing/fixtures";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { bulkEnroll } from "./bulk-enroll";
import { importCsv } from "./csv";
import { enrollMachine } from "./enroll";

// Enrollment into subnets (single, bulk, CSV) on the Store: runs on SQLite and on PostgreSQL (STORE_SLICE).
// On PostgreSQL the allocator locks each subnet's row before it reads what is free, and the bulk path reads the
// database's clashes up front; the outcomes must be the ones SQLite gives.
let h: Harness;
let n = 700;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

const bootNic = async (machineId: number) => {
  const { nics } = h.store.t;
  return (await h.store.db.select().from(nics).where(and(eq(nics.machineId, machineId), eq(nics.isBoot, true))))[0]!;
};
const allocationsOf = async (subnetId: number) => {
  const { ipAllocations: a } = h.store.t;
  return h.store.db.select().from(a).where(eq(a.subnetId, subnetId)).orderBy(a.sortKey);
};
const subnet = async (name: string, cidr: string, extra: Record<string, unknown> = {}) => (await h.admin.subnets.create({ name, cidr, gateway: cidr.replace(/0\/\d+$/, "1"), ...extra })).id;
const outcome = <T>(p: Promise<T>): Promise<T | AppError> =>
  p.catch((err: unknown) => {
    if (err instanceof AppError) return err;
    throw err;
  });

describe(`enrollment into subnets on ${testStoreKind()}`, () => {
  it("single enrollment: auto takes the first free address, static pins one, both recorded as allocations of the boot NIC", async () => {
    const s = await subnet("es-a", "10.120.0.0/24", { reserved: [{ start: "10.120.0.2", end: "10.120.0.9" }] });
    const auto = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { ifname: "eno1", subnetId: s } }));
    const pinned = await h.operator.machines.enroll(machineInput(++n, { ip: "10.120.0.50", network: { subnetId: s, addressMode: "static" } }));
    expect(await bootNic(auto.id)).toMatchObject({ ip: "10.120.0.10", prefix: 24, gateway: "10.120.0.1", addressMode: "auto", subnetId: s, ifname: "eno1" });
    expect(await bootNic(pinned.id)).toMatchObject({ ip: "10.120.0.50", addressMode: "static", subnetId: s });
    const rows = await allocationsOf(s);
    expect(rows.map((r) => [r.address, r.machineId, r.mode])).toEqual([
      ["10.120.0.10", auto.id, "auto"],
      ["10.120.0.50", pinned.id, "static"],
    ]);
    expect(rows[0]!.nicId).toBe((await bootNic(auto.id)).id);
    // The pinned address is taken: named with its holder, nothing written.
    const { error } = await expectTrpcError(h.operator.machines.enroll(machineInput(++n, { ip: "10.120.0.50", network: { subnetId: s, addressMode: "static" } })), "CONFLICT");
    expect(error.message).toMatch(/10\.120\.0\.50 in subnet es-a is already (held by|the IP of) node-/);
    expect(await allocationsOf(s)).toHaveLength(2);
    // A subnet that does not exist is named.
    const { error: gone } = await expectTrpcError(h.operator.machines.enroll(machineInput(++n, { ip: null, network: { subnetId: 999_999 } })), "NOT_FOUND");
    expect(gone.message).toBe("Subnet 999999 does not exist");
  });

  it("bulk enrollment: pinned rows are held before earlier auto rows take addresses; every allocation names its NIC", async () => {
    const s = await subnet("es-b", "10.121.0.0/24");
    const items = [
      machineInput(++n, { ip: null, network: { subnetId: s } }),
      machineInput(++n, { ip: null, network: { subnetId: s, addressMode: "auto" } }),
      // An earlier auto row would take .2 and .3; this row pins .3 for itself.
      machineInput(++n, { ip: "10.121.0.3", network: { subnetId: s, addressMode: "static" } }),
      machineInput(++n, { ip: null, network: { subnetId: s, addressMode: "dhcp" } }),
    ];
    const res = await h.operator.machines.bulkEnroll({ machines: items });
    expect(res.enrolled).toBe(4);
    const nics = await Promise.all(res.ids.map(bootNic));
    expect(nics.map((x) => [x.ip, x.addressMode])).toEqual([
      ["10.121.0.2", "auto"],
      ["10.121.0.4", "auto"],
      ["10.121.0.3", "static"],
      [null, "dhcp"],
    ]);
    const rows = await allocationsOf(s);
    expect(rows.map((r) => [r.address, r.machineId, r.nicId, r.mode])).toEqual([
      ["10.121.0.2", res.ids[0], nics[0]!.id, "auto"],
      ["10.121.0.3", res.ids[2], nics[2]!.id, "static"],
      ["10.121.0.4", res.ids[1], nics[1]!.id, "auto"],
    ]);
  });

  it("bulk enrollment refuses the whole batch when a subnet runs out or does not exist, naming the rows", async () => {
    // A /29: .1 is the gateway, .2–.6 are the five assignable addresses.
    const s = await subnet("es-c", "10.122.0.0/29");
    const items = Array.from({ length: 7 }, () => machineInput(++n, { ip: null, network: { subnetId: s } }));
    items.push(machineInput(++n, { ip: null, network: { subnetId: 999_998 } }));
    const dry = await h.operator.machines.bulkEnroll({ machines: items, dryRun: true });
    expect(dry.errors.map((e) => [e.row, e.field, e.message])).toEqual([
      [6, "network.subnetId", "Subnet full"],
      [7, "network.subnetId", "Subnet full"],
      [8, "network.subnetId", "No such subnet"],
    ]);
    await expectTrpcError(h.operator.machines.bulkEnroll({ machines: items }), "BAD_REQUEST", "ROWS_INVALID");
    expect(await allocationsOf(s)).toEqual([]);
    const { machines } = h.store.t;
    expect(await h.store.db.select().from(machines).where(inArray(machines.name, items.map((i) => i.name)))).toEqual([]);
  });

  it("the CSV import takes subnets by name and allocates as bulk enrollment does", async () => {
    const s = await subnet("es-d", "10.123.0.0/24");
    const a = machineInput(++n);
    const b = machineInput(++n);
    const csv = `name,mac,subnet,address_mode\n${a.name},${a.bootMac},es-d,auto\n${b.name},${b.bootMac},es-d,static\n`;
    const dry = await importCsv(h.domain, csv, "user:test", true);
    expect(dry.errors).toEqual([{ row: 2, field: "ip", message: "Give the address to pin" }]);
    const ok = await importCsv(h.domain, csv.replace(",es-d,static", ",es-d,dhcp"), "user:test", false);
    expect(ok.imported).toBe(2);
    expect((await allocationsOf(s)).map((r) => r.address)).toEqual(["10.123.0.2"]);
  });

  it("concurrent single and bulk enrollments into one small subnet: distinct addresses, the rest refused as full, nothing half-written", async () => {
    // A /28: .1 is the gateway, .2–.14 the 13 assignable addresses; 20 machines ask for one.
    const s = await subnet("es-e", "10.124.0.0/28");
    const input = () => machineEnrollSchema.parse(machineInput(++n, { ip: null, network: { subnetId: s } }));
    const singles = Array.from({ length: 12 }, input);
    const batches = [Array.from({ length: 4 }, input), Array.from({ length: 4 }, input)];
    const results = await Promise.all([
      ...singles.map((i) => outcome(enrollMachine(h.domain, i, "user:test"))),
      ...batches.map((b) => outcome(bulkEnroll(h.domain, b, "user:test", false))),
    ]);
    const refused = results.filter((r): r is AppError => r instanceof AppError);
    for (const e of refused) {
      expect(["CONFLICT", "ROWS_INVALID"]).toContain(e.code);
      expect(e.message).toMatch(e.code === "CONFLICT" ? /^Subnet es-e \(10\.124\.0\.0\/28\) has no free address left$/ : /^\d error\(s\); nothing was enrolled\. Row \d, field network\.subnetId: Subnet full$/);
    }
    const enrolledIds = results.flatMap((r) => (r instanceof AppError ? [] : "id" in r ? [r.id] : r.ids));
    expect(enrolledIds.length).toBeLessThanOrEqual(13);
    // Whoever won, every address went to one machine, and every allocation to an enrolled machine's boot NIC.
    const rows = await allocationsOf(s);
    expect(rows).toHaveLength(enrolledIds.length);
    expect(new Set(rows.map((r) => r.address)).size).toBe(rows.length);
    expect(new Set(rows.map((r) => r.machineId))).toEqual(new Set(enrolledIds));
    for (const id of enrolledIds) expect(rows.map((r) => r.address)).toContain((await bootNic(id)).ip);
    // In any order the twelve singles fill what the batches leave: 12 when both batches come too late, else 13.
    expect(enrolledIds.length).toBeGreaterThanOrEqual(12);
  });

  it("two bulk enrollments naming the same machine at once: one wins, the other gets SQLite's refusal naming the clash", async () => {
    const shared = machineEnrollSchema.parse(machineInput(++n));
    const a = [shared, machineEnrollSchema.parse(machineInput(++n))];
    const b = [machineEnrollSchema.parse(machineInput(++n)), { ...shared, bootMac: machineEnrollSchema.parse(machineInput(++n)).bootMac, ip: null }];
    const [ra, rb] = await Promise.all([outcome(bulkEnroll(h.domain, a, "user:test", false)), outcome(bulkEnroll(h.domain, b, "user:test", false))]);
    const lost = [ra, rb].filter((r): r is AppError => r instanceof AppError);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.code).toBe("ROWS_INVALID");
    expect(lost[0]!.details).toContainEqual({ row: ra instanceof AppError ? 1 : 2, field: "name", message: `A machine named ${shared.name} already exists` });
    const { machines } = h.store.t;
    const names = [...a, ...b].map((i) => i.name);
    // Two machines of the winner, none of the loser.
    expect(await h.store.db.select({ id: machines.id }).from(machines).where(inArray(machines.name, names))).toHaveLength(2);
  });
});
