import { count, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ErrorDetail } from "../../lib/errors";
import { expectTrpcError, trpcError } from "../testing/fixtures";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { importCsv } from "./csv";

// Bulk enrollment on the Store: runs on SQLite and on PostgreSQL (STORE_SLICE in vitest.config.ts).

let h: Harness;
let seq = 0;
let rackId = 0;
let rackName = "";

async function counts() {
  const { machines, nics, bmcs, events } = h.store.t;
  const n = async (t: typeof machines | typeof nics | typeof bmcs | typeof events) => (await h.store.db.select({ n: count() }).from(t))[0]!.n;
  return { machines: await n(machines), nics: await n(nics), bmcs: await n(bmcs), events: await n(events), published: h.published.length };
}

const nicRow = async (machineId: number) => (await h.store.db.select().from(h.store.t.nics).where(eq(h.store.t.nics.machineId, machineId)))[0];
const bmcRowOf = async (machineId: number) => (await h.store.db.select().from(h.store.t.bmcs).where(eq(h.store.t.bmcs.machineId, machineId)))[0];

const hex = (n: number) => (n & 0xff).toString(16).padStart(2, "0");

/** A valid machine k of this test (unique name, MAC, IP, BMC address), in this test's rack at U k. */
function m(k: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: `bulk-${seq}-${k}`,
    rackId,
    uPosition: k,
    bootMac: `52:54:00:b0:${hex(seq)}:${hex(k)}`,
    ip: `10.91.${seq}.${k}`,
    bmc: { address: `10.92.${seq}.${k}`, username: "root", password: `pw-${k}` },
    ...overrides,
  };
}

/** A fresh rack and address space per test. */
async function fresh(): Promise<void> {
  seq++;
  rackName = `bulk-r${seq}`;
  rackId = (await h.operator.racks.create({ name: rackName, heightU: 42 })).id;
}

/** bulkEnroll that must be refused: checks that nothing was written or published, returns the details. */
async function refused(items: unknown[]): Promise<ErrorDetail[]> {
  const before = await counts();
  const { error, shape } = await trpcError(h.operator.machines.bulkEnroll({ machines: items }));
  expect(shape.data.appCode).toBe("ROWS_INVALID");
  expect(error.code).toBe("BAD_REQUEST");
  expect(await counts()).toEqual(before);
  // The dry run reports exactly the same problems and writes nothing either.
  const dry = await h.operator.machines.bulkEnroll({ machines: items, dryRun: true });
  expect(dry).toMatchObject({ ok: false, dryRun: true, enrolled: 0, ids: [] });
  expect(await counts()).toEqual(before);
  const details = shape.data.details;
  expect(dry.errors).toEqual(details);
  return details;
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe(`machines.bulkEnroll on ${testStoreKind()}`, () => {
  it("enrolls every machine in one transaction, in order, with one summary event", async () => {
    await fresh();
    const before = await counts();
    const items = [m(1), m(2), m(3, { uHeight: 2 }), m(5, { rackId: null, uPosition: null, ip: null, bmc: null, firmware: "uefi" })];
    const res = await h.operator.machines.bulkEnroll({ machines: items });
    expect(res).toMatchObject({ ok: true, dryRun: false, enrolled: 4, errors: [] });
    const { machines, events } = h.store.t;
    const rows = await h.store.db.select().from(machines).where(inArray(machines.id, res.ids));
    expect(res.ids.map((id) => rows.find((r) => r.id === id)!.name)).toEqual(items.map((i) => i.name));
    const after = await counts();
    expect([after.machines - before.machines, after.nics - before.nics, after.bmcs - before.bmcs]).toEqual([4, 4, 3]);
    expect(rows.find((r) => r.name === `bulk-${seq}-3`)).toMatchObject({ rackId, uPosition: 3, uHeight: 2, state: "enrolled", firmware: "auto" });
    expect(rows.find((r) => r.name === `bulk-${seq}-5`)).toMatchObject({ rackId: null, uPosition: null, firmware: "uefi" });
    const m1 = rows.find((r) => r.name === `bulk-${seq}-1`)!;
    expect(await nicRow(m1.id)).toMatchObject({ mac: `52:54:00:b0:${hex(seq)}:01`, ip: `10.91.${seq}.1`, isBoot: true });
    const bmc = (await bmcRowOf(m1.id))!;
    expect(bmc).toMatchObject({ driver: "ipmitool", port: 623, privilege: "ADMINISTRATOR", cipherSuite: 3, username: "root" });
    expect(bmc.passwordEncrypted).not.toContain("pw-1");
    expect(h.domain.secrets.decrypt(bmc.passwordEncrypted)).toBe("pw-1");
    // One audit event for the batch, not one per machine.
    expect(after.events - before.events).toBe(1);
    const ev = (await h.store.db.select().from(events).where(eq(events.kind, "machine.bulk_enrolled")).orderBy(events.id)).at(-1)!;
    expect(ev).toMatchObject({ actor: "user:operator", machineId: null, message: "Enrolled 4 machines (JSON)" });
    expect(ev.payload).toMatchObject({ source: "JSON", count: 4, firstId: res.ids[0], lastId: res.ids[3], rackIds: [rackId] });
    const published = h.published.slice(before.published);
    expect(published).toContainEqual({ type: "machines.bulk", count: 4 });
    expect(published).toContainEqual({ type: "rack.changed", rackId });
    expect(published.filter((e) => e.type === "machine.changed")).toEqual([]);
    // Enrolled machines are real machines: the list and machines.get see them.
    expect((await h.operator.machines.get({ id: m1.id })).bmc).toMatchObject({ address: `10.92.${seq}.1`, hasPassword: true });
  });

  it("a dry run checks everything and writes nothing", async () => {
    await fresh();
    const before = await counts();
    expect(await h.operator.machines.bulkEnroll({ machines: [m(1), m(2)], dryRun: true })).toEqual({ ok: true, dryRun: true, enrolled: 0, ids: [], errors: [] });
    expect(await counts()).toEqual(before);
  });

  it("refuses the whole batch when one row is bad, naming every problem of every row", async () => {
    await fresh();
    const details = await refused([
      m(1),
      m(2, { name: "Bad Name!", bootMac: "zz", ip: "10.0.0.999", bmc: { address: "10.0.0.1;reboot", username: "", password: "" } }),
      m(3),
    ]);
    expect(details.every((d) => d.row === 2)).toBe(true);
    expect([...new Set(details.map((d) => d.field))].sort()).toEqual(["bmc.address", "bmc.password", "bmc.username", "bootMac", "ip", "name"]);
  });

  it("reports duplicates within the batch and clashes with the database, in any spelling", async () => {
    await fresh();
    await h.operator.machines.bulkEnroll({ machines: [m(1)] });
    const details = await refused([
      m(2),
      m(3, { name: `BULK-${seq}-2`, bootMac: `52-54-00-B0-${hex(seq)}-02` }),
      m(4, { ip: `10.92.${seq}.2` }),
      m(5, { bmc: { address: `10.92.${seq}.2`, username: "u", password: "p" } }),
      m(6, { name: `bulk-${seq}-1`, bootMac: `52:54:00:b0:${hex(seq)}:01`, ip: `10.91.${seq}.1` }),
      m(7, { bmc: { address: `10.92.${seq}.1`, username: "u", password: "p" } }),
    ]);
    const by = (row: number) => details.filter((d) => d.row === row).map((d) => `${d.field}: ${d.message}`);
    expect(by(1)).toEqual([]);
    expect(by(2)).toEqual([`name: Name bulk-${seq}-2 is also on row 1 of this request`, `bootMac: MAC 52:54:00:b0:${hex(seq)}:02 is also on row 1 of this request`]);
    expect(by(3)).toEqual([`ip: IP 10.92.${seq}.2 is also the BMC address on row 1 of this request`]);
    expect(by(4)).toEqual([`bmc.address: BMC address 10.92.${seq}.2:623 is also on row 1 of this request`]);
    expect(by(5)).toEqual([
      `name: A machine named bulk-${seq}-1 already exists`,
      `bootMac: MAC 52:54:00:b0:${hex(seq)}:01 belongs to bulk-${seq}-1`,
      `ip: IP 10.91.${seq}.1 belongs to bulk-${seq}-1`,
    ]);
    expect(by(6)).toEqual([`bmc.address: BMC address 10.92.${seq}.1:623 belongs to bulk-${seq}-1's BMC`]);
  });

  it("places each machine against the database and the rows before it; unknown racks and profiles are named", async () => {
    await fresh();
    await h.operator.machines.bulkEnroll({ machines: [m(1, { uPosition: 10, uHeight: 2 })] });
    const details = await refused([
      m(2, { uPosition: 20, uHeight: 3 }),
      m(3, { uPosition: 22 }),
      m(4, { uPosition: 11 }),
      m(5, { uPosition: 42, uHeight: 2 }),
      m(6, { rackId: 999_999 }),
      m(7, { osProfileId: 999_999 }),
      m(8, { uPosition: null }),
      m(9, { rackId: null, uPosition: 3 }),
    ]);
    const by = (row: number) => details.filter((d) => d.row === row).map((d) => `${d.field}: ${d.message}`);
    expect(by(1)).toEqual([]);
    expect(by(2)).toEqual([`uPosition: Overlaps bulk-${seq}-2 (U20-U22)`]);
    expect(by(3)).toEqual([`uPosition: Overlaps bulk-${seq}-1 (U10-U11)`]);
    expect(by(4)).toEqual(["uPosition: Must be between 1 and 41"]);
    expect(by(5)).toEqual(["rackId: No such rack"]);
    expect(by(6)).toEqual(["osProfileId: No such profile"]);
    expect(by(7)).toEqual(["uPosition: Required"]);
    expect(by(8)).toEqual(["uPosition: Choose a rack first"]);
  });

  it("finds the same problems as the CSV import of the same rows", async () => {
    await fresh();
    const bad = [m(1), m(2, { name: `bulk-${seq}-1`, ip: "nope" }), m(3, { uPosition: 1 }), m(4, { uPosition: 50 })];
    const json = await refused(bad);
    const header = "name,rack,u_position,mac,ip,bmc_address,bmc_user,bmc_password";
    const line = (x: Record<string, unknown>) => {
      const b = x.bmc as { address: string; username: string; password: string };
      return [x.name, rackName, x.uPosition, x.bootMac, x.ip, b.address, b.username, b.password].join(",");
    };
    const csv = await importCsv(h.domain, [header, ...bad.map(line)].join("\n"), "user:test", true);
    expect(csv.ok).toBe(false);
    const column: Record<string, string> = { name: "name", ip: "ip", uPosition: "u_position" };
    expect(json.map((d) => ({ ...d, field: column[d.field!] ?? d.field, message: d.message.replace("this request", "this file") }))).toEqual(csv.errors);
  });

  it("refuses hostile values with a clear message per field, or keeps them whole in their field", async () => {
    await fresh();
    const hostile = ["a\nb", "a\rb", "a\0b", "a\\b", 'a"b', "a'b", "$(reboot)", "a;b", "a&b", "../etc", "dhcp-host", "x".repeat(300), "nœud-ü"];
    for (const v of hostile) {
      const details = await refused([m(1), m(2, { name: v, bootMac: v, ip: v, bmc: { address: v, username: v.slice(0, 20), password: "p" } })]);
      const fields = details.filter((d) => d.row === 2).map((d) => d.field);
      // "dhcp-host" is a valid host name (and BMC host name): only the MAC and the IP are wrong.
      const wrong = v === "dhcp-host" ? ["bootMac", "ip"] : ["name", "bootMac", "ip", "bmc.address"];
      expect(fields, JSON.stringify(v)).toEqual(expect.arrayContaining(wrong));
      expect(details.filter((d) => d.row !== 2)).toEqual([]);
      for (const d of details) expect(d.message.length).toBeLessThan(700);
    }
    // A password is only a password: shell and format characters are kept exactly, and never stored in the clear.
    const password = `$(x);&"'\\..é`;
    const res = await h.operator.machines.bulkEnroll({ machines: [m(3, { bmc: { address: `10.92.${seq}.3`, username: "r;oot", password } })] });
    const bmc = (await bmcRowOf(res.ids[0]!))!;
    expect(bmc.username).toBe("r;oot");
    expect(h.domain.secrets.decrypt(bmc.passwordEncrypted)).toBe(password);
    expect(bmc.passwordEncrypted).not.toContain("$(x)");
    // Control characters in a password are refused, not cut.
    const details = await refused([m(4, { bmc: { address: `10.92.${seq}.4`, username: "root", password: "a\nb" } })]);
    expect(details).toEqual([{ row: 1, field: "bmc.password", message: expect.stringContaining("control character") }]);
  });

  it("refuses rows that are not machine objects and fields it does not know", async () => {
    await fresh();
    const proto = JSON.parse(`{"name":"bulk-${seq}-9","bootMac":"52:54:00:b0:${hex(seq)}:09","__proto__":{"admin":true},"constructor":1}`);
    const details = await refused([null, 42, "name,mac", [m(1)], m(2, { mac: "52:54:00:00:00:01", ["k\n".repeat(50)]: 1 }), proto]);
    const by = (row: number) => details.filter((d) => d.row === row);
    for (const row of [1, 2, 3, 4]) expect(by(row)).toEqual([{ row, message: "A machine must be a JSON object" }]);
    expect(by(5).map((d) => d.field)).toEqual(["mac", "k\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\nk\n"]);
    expect(by(5)[0]!.message).toMatch(/^Unknown field "mac"; the fields are name, /);
    expect(by(5)[1]!.message.length).toBeLessThan(300);
    expect(by(6).map((d) => d.field)).toEqual(["__proto__", "constructor"]);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it("refuses an empty batch and one over 10,000 before looking at any row", async () => {
    await expectTrpcError(h.operator.machines.bulkEnroll({ machines: [] }), "BAD_REQUEST");
    const before = await counts();
    await expectTrpcError(h.operator.machines.bulkEnroll({ machines: Array.from({ length: 10_001 }, () => ({})) }), "BAD_REQUEST");
    expect(await counts()).toEqual(before);
  });

  it("is for operators: a viewer and a read-only token are refused", async () => {
    await fresh();
    await expectTrpcError(h.viewer.machines.bulkEnroll({ machines: [m(1)] }), "FORBIDDEN");
    await expectTrpcError(h.readOnlyAdmin.machines.bulkEnroll({ machines: [m(1)] }), "FORBIDDEN");
  });

  it("enrolls a batch of 2,000 machines", async () => {
    await fresh();
    const big = Array.from({ length: 2000 }, (_, i) => ({
      name: `bulk-${seq}-big-${i}`,
      bootMac: `52:54:01:${hex(seq)}:${hex(i >> 8)}:${hex(i)}`,
      ip: `10.93.${i >> 8}.${i & 255}`,
      bmc: { driver: "fake", address: `10.94.${i >> 8}.${i & 255}`, username: "admin", password: "pw" },
    }));
    const res = await h.operator.machines.bulkEnroll({ machines: big });
    expect(res.enrolled).toBe(2000);
    expect(new Set(res.ids).size).toBe(2000);
    const { machines, nics } = h.store.t;
    expect((await h.store.db.select({ n: count() }).from(machines).where(inArray(machines.id, res.ids)))[0]!.n).toBe(2000);
    expect((await h.store.db.select({ n: count() }).from(nics).where(inArray(nics.machineId, res.ids)))[0]!.n).toBe(2000);
    expect((await h.store.db.select({ name: machines.name }).from(machines).where(eq(machines.id, res.ids[1999]!)))[0]!.name).toBe(`bulk-${seq}-big-1999`);
  });

  it("writes the same NIC and BMC rows as a single enrollment, across insert chunks and mixed row shapes", async () => {
    await fresh();
    // 250 rows: three chunks of the multi-row insert (100, 100, 50); every fifth with an interface name and gateway,
    // every third without a BMC, the rest with every BMC field set, so rows of several shapes are grouped.
    const items = Array.from({ length: 250 }, (_, i) =>
      m(i + 1, {
        rackId: null,
        uPosition: null,
        ip: `10.95.${seq}.${i}`,
        bmc: i % 3 === 0 ? null : { driver: "ipmitool", address: `10.96.${i >> 8}.${i & 255}`, port: 600 + i, username: `u${i}`, password: `pw-${i}`, privilege: "OPERATOR", cipherSuite: 17 },
        ...(i % 5 === 0 && { network: { ifname: "eth0", prefix: 24, gateway: `10.95.${seq}.254` } }),
      }),
    );
    const res = await h.operator.machines.bulkEnroll({ machines: items });
    expect(res.enrolled).toBe(250);
    const single = [items[0]!, items[1]!].map((it, k) => ({ ...it, name: `single-${seq}-${k}`, bootMac: `52:54:00:b1:${hex(seq)}:${hex(k)}`, ip: `10.97.${seq}.${k}`, ...(it.bmc ? { bmc: { ...(it.bmc), address: `10.98.${seq}.${k}` } } : {}) }));
    const singleIds: number[] = [];
    for (const it of single) singleIds.push((await h.operator.machines.enroll(it as never)).id);
    const strip = <T extends Record<string, unknown>>(r: T | undefined, drop: string[]) => Object.fromEntries(Object.entries(r ?? {}).filter(([k]) => !drop.includes(k)));
    const nicOf = async (id: number) => strip(await nicRow(id), ["id", "machineId", "mac", "ip", "gateway"]);
    const bmcOf = async (id: number) => strip(await bmcRowOf(id), ["id", "machineId", "address", "passwordEncrypted"]);
    for (const k of [0, 1]) {
      expect(await nicOf(res.ids[k]!)).toEqual(await nicOf(singleIds[k]!));
      expect(await bmcOf(res.ids[k]!)).toEqual(await bmcOf(singleIds[k]!));
    }
    // Every row landed on its own machine, whatever chunk and group it went in.
    for (const [i, id] of res.ids.entries()) {
      const nic = (await nicRow(id))!;
      expect(nic).toMatchObject({ mac: items[i]!.bootMac, ip: `10.95.${seq}.${i}`, isBoot: true, ifname: i % 5 === 0 ? "eth0" : null });
      const bmc = await bmcRowOf(id);
      if (i % 3 === 0) expect(bmc).toBeUndefined();
      else {
        expect(bmc).toMatchObject({ address: `10.96.${i >> 8}.${i & 255}`, port: 600 + i, username: `u${i}`, privilege: "OPERATOR", cipherSuite: 17 });
        expect(h.domain.secrets.decrypt(bmc!.passwordEncrypted)).toBe(`pw-${i}`);
      }
    }
  });
});
