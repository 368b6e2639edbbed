import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError, type ErrorDetail } from "../../lib/errors";
import { expectTrpcError } from "../testing/fixtures";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { importCsv } from "./csv";

// The CSV import on the Store: runs on SQLite and on PostgreSQL (STORE_SLICE in vitest.config.ts).

let h: Harness;

const HEADER = "name,rack,u_position,u_height,mac,ip,bmc_address,bmc_user,bmc_password";

async function counts() {
  const { machines, nics, bmcs, events } = h.store.t;
  const n = async (t: typeof machines | typeof nics | typeof bmcs | typeof events) => (await h.store.db.select({ n: count() }).from(t))[0]!.n;
  return { machines: await n(machines), nics: await n(nics), bmcs: await n(bmcs), events: await n(events), published: h.published.length };
}

const machineNamed = async (name: string) => (await h.store.db.select().from(h.store.t.machines).where(eq(h.store.t.machines.name, name)))[0]!;
const nicOf = async (machineId: number) => (await h.store.db.select().from(h.store.t.nics).where(eq(h.store.t.nics.machineId, machineId)))[0]!;
const bmcOf = async (machineId: number) => (await h.store.db.select().from(h.store.t.bmcs).where(eq(h.store.t.bmcs.machineId, machineId)))[0]!;

/** Import that must fail: returns the details, and checks that nothing at all was written or published. */
async function importFails(csv: string): Promise<{ error: AppError; details: ErrorDetail[] }> {
  const before = await counts();
  let error: unknown;
  try {
    await importCsv(h.domain, csv, "user:test", false);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe("CSV_INVALID");
  expect(await counts()).toEqual(before);
  return { error: error as AppError, details: (error as AppError).details };
}

let seq = 0;
/** A valid data row for machine k (unique name, MAC, IP), in this test's rack at U k. */
function row(k: number, overrides: Partial<Record<string, string>> = {}): string {
  const v = {
    name: `csv-${seq}-${k}`,
    rack: `csv-r${seq}`,
    u_position: String(k),
    u_height: "1",
    mac: `52:54:00:c5:${(seq & 0xff).toString(16).padStart(2, "0")}:${k.toString(16).padStart(2, "0")}`,
    ip: `10.77.${seq}.${k}`,
    bmc_address: `10.78.${seq}.${k}`,
    bmc_user: "root",
    bmc_password: `pw-${k}`,
    ...overrides,
  };
  return [v.name, v.rack, v.u_position, v.u_height, v.mac, v.ip, v.bmc_address, v.bmc_user, v.bmc_password].join(",");
}

function csv(...rows: string[]): string {
  return [HEADER, ...rows].join("\n");
}

beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe(`CSV import on ${testStoreKind()}`, () => {
  // Every test gets its own rack (csv-r<seq>) and address space, so tests stay independent in one database.
  const rack = async () => {
    seq++;
    await h.operator.racks.create({ name: `csv-r${seq}`, heightU: 42 });
  };

  it("imports every row of a good CSV", async () => {
    await rack();
    const before = await counts();
    const res = await importCsv(h.domain, csv(row(1), row(2), row(3, { u_height: "2" }), row(5, { rack: "", u_position: "", ip: "" })), "user:test", false);
    expect(res).toMatchObject({ ok: true, dryRun: false, imported: 4, errors: [] });
    expect(res.rows.map((r) => r.row)).toEqual([1, 2, 3, 4]);
    const after = await counts();
    expect(after.machines - before.machines).toBe(4);
    expect(after.nics - before.nics).toBe(4);
    expect(after.bmcs - before.bmcs).toBe(4);
    const m3 = await machineNamed(`csv-${seq}-3`);
    expect(m3).toMatchObject({ uPosition: 3, uHeight: 2, state: "enrolled" });
    const m5 = await machineNamed(`csv-${seq}-5`);
    expect(m5).toMatchObject({ rackId: null, uPosition: null });
    expect((await nicOf(m5.id)).ip).toBeNull();
    // BMC passwords are encrypted at rest.
    const bmc = await bmcOf(m3.id);
    expect(bmc.passwordEncrypted).not.toContain("pw-3");
    expect(h.domain.secrets.decrypt(bmc.passwordEncrypted)).toBe("pw-3");
    // One fleet-wide notice for the batch.
    expect(h.published.slice(before.published)).toContainEqual({ type: "machines.bulk", count: 4 });
  });

  it("accepts a BOM, CRLF line ends, header case and spacing, quoted fields and MAC spellings", async () => {
    await rack();
    const text =
      "\uFEFFName, Rack ,U-Position,MAC,IP\r\n" +
      `csv-${seq}-1,csv-r${seq},1,AA-BB-CC-${seq.toString(16).padStart(2, "0")}-00-01,10.79.${seq}.1\r\n` +
      `"csv-${seq}-2",csv-r${seq},2,aabb.cc${seq.toString(16).padStart(2, "0")}.0002,\r\n` +
      "\r\n";
    const res = await importCsv(h.domain, text, "user:test", false);
    expect(res.imported).toBe(2);
    expect(res.rows.map((r) => r.mac)).toEqual([
      `aa:bb:cc:${seq.toString(16).padStart(2, "0")}:00:01`,
      `aa:bb:cc:${seq.toString(16).padStart(2, "0")}:00:02`,
    ]);
  });

  it.each([
    ["a bad MAC", (k: number) => row(k, { mac: "zz:zz:zz:zz:zz:zz" }), "mac", /not a MAC/],
    ["a bad IP", (k: number) => row(k, { ip: "10.0.0.999" }), "ip", /not an IPv4/],
    ["a bad name", (k: number) => row(k, { name: "bad name" }), "name", /host name/],
    ["an unknown rack", (k: number) => row(k, { rack: "no-such-rack" }), "rack", /no-such-rack/],
    ["a U position beyond the rack", (k: number) => row(k, { u_position: "42", u_height: "2" }), "u_position", /does not fit|between/],
    ["a U position that is not a number", (k: number) => row(k, { u_position: "two" }), "u_position", /whole number/],
    ["a BMC without password", (k: number) => row(k, { bmc_password: "" }), "bmc_password", /password/i],
  ])("imports nothing when row 3 has %s, naming row 3 and column %s", async (_what, bad, column, message) => {
    await rack();
    const { error, details } = await importFails(csv(row(1), row(2), bad(3), row(4)));
    expect(details[0]).toMatchObject({ row: 3, field: column });
    expect(details[0]!.message).toMatch(message);
    expect(details.every((d) => d.row === 3)).toBe(true);
    expect(error.message).toMatch(new RegExp(`Row 3, field ${column}`));
    expect(error.message).toContain("nothing was imported");
  });

  it("reports an unknown rack once, not again as a placement error", async () => {
    await rack();
    const { details } = await importFails(csv(row(1), row(2, { rack: "no-such-rack", u_position: "5" })));
    expect(details).toEqual([expect.objectContaining({ row: 2, field: "rack" })]);
  });

  it("names a name duplicated within the file (the later row)", async () => {
    await rack();
    const { details } = await importFails(csv(row(1), row(2), row(3, { name: `csv-${seq}-1` })));
    expect(details).toEqual([expect.objectContaining({ row: 3, field: "name" })]);
    expect(details[0]!.message).toContain(`csv-${seq}-1`);
  });

  it("names a MAC duplicated within the file, in another spelling", async () => {
    await rack();
    const mac = `52-54-00-C5-${(seq & 0xff).toString(16).padStart(2, "0").toUpperCase()}-01`;
    const { details } = await importFails(csv(row(1), row(2, { mac })));
    expect(details).toEqual([expect.objectContaining({ row: 2, field: "mac" })]);
  });

  it("names an overlap within the file, including multi-U machines", async () => {
    await rack();
    const { details } = await importFails(csv(row(10, { u_height: "3" }), row(20), row(12)));
    expect(details).toEqual([expect.objectContaining({ row: 3, field: "u_position" })]);
    expect(details[0]!.message).toContain(`csv-${seq}-10`);
  });

  it("names rows that clash with machines already in the database", async () => {
    await rack();
    await importCsv(h.domain, csv(row(1)), "user:test", false);
    seq++; // new names and addresses, same (previous) rack for the clashing rows below
    await h.operator.racks.create({ name: `csv-r${seq}`, heightU: 42 });
    const prev = seq - 1;
    const { details } = await importFails(
      csv(
        row(1),
        row(2, { name: `csv-${prev}-1` }),
        row(3, { mac: `52:54:00:c5:${prev.toString(16).padStart(2, "0")}:01` }),
        row(4, { ip: `10.77.${prev}.1` }),
        row(5, { rack: `csv-r${prev}`, u_position: "1" }),
      ),
    );
    expect(details.map((d) => [d.row, d.field])).toEqual([
      [2, "name"],
      [3, "mac"],
      [4, "ip"],
      [5, "u_position"],
    ]);
  });

  it("reports every bad row in one pass, in row order", async () => {
    await rack();
    const { details } = await importFails(csv(row(1, { mac: "nope" }), row(2), row(3, { rack: "ghost" }), row(4, { name: `csv-${seq}-2` })));
    expect([...new Set(details.map((d) => d.row))]).toEqual([1, 3, 4]);
    expect(details.find((d) => d.row === 1)).toMatchObject({ field: "mac" });
    expect(details.find((d) => d.row === 3)).toMatchObject({ field: "rack" });
    expect(details.find((d) => d.row === 4)).toMatchObject({ field: "name" });
  });

  it("reports every problem of a row at once: syntax of each field, duplicates in the file, clashes with the database", async () => {
    await rack();
    await importCsv(h.domain, csv(row(1)), "user:test", false);
    const { details } = await importFails(
      csv(
        row(2),
        // Row 2: bad MAC, a 25-byte password, BMC address 10.43.1.999, the name of row 1 (in the file), the IP of a machine in the database.
        row(3, { name: `csv-${seq}-2`, mac: "nope", bmc_password: "x".repeat(25), bmc_address: "10.43.1.999", ip: `10.77.${seq}.1` }),
      ),
    );
    const row2 = details.filter((d) => d.row === 2).map((d) => [d.field, d.message]);
    expect(row2).toEqual(
      expect.arrayContaining([
        ["mac", expect.stringMatching(/not a MAC/)],
        ["bmc_password", "IPMI passwords are at most 20 bytes; this one is 25 bytes (UTF-8)"],
        ["bmc_address", expect.stringMatching(/"10.43.1.999" is not an IPv4 address/)],
        ["name", `Name csv-${seq}-2 is also on row 1 of this file`],
        ["ip", `IP 10.77.${seq}.1 belongs to csv-${seq}-1`],
      ]),
    );
    expect(row2).toHaveLength(5);
    expect(details.filter((d) => d.row !== 2)).toEqual([]);
  });

  it("reports duplicates within the file as such, never as 'already exists'", async () => {
    await rack();
    const res = await importCsv(
      h.domain,
      csv(row(1), row(2, { name: `csv-${seq}-1`, mac: row(1).split(",")[4]!, ip: `10.77.${seq}.1`, bmc_address: `10.78.${seq}.1` })),
      "user:test",
      true,
    );
    expect(res.errors.map((e) => [e.row, e.field, e.message])).toEqual([
      [2, "name", `Name csv-${seq}-1 is also on row 1 of this file`],
      [2, "mac", expect.stringMatching(/^MAC 52:54:00:c5:[0-9a-f]{2}:01 is also on row 1 of this file$/)],
      [2, "bmc_address", `BMC address 10.78.${seq}.1:623 is also on row 1 of this file`],
      [2, "ip", `IP 10.77.${seq}.1 is also the IP on row 1 of this file`],
    ]);
    expect(JSON.stringify(res.errors)).not.toContain("already exists");
  });

  it("flags an IP used as a machine IP and as a BMC address, within the file and against the database", async () => {
    await rack();
    await importCsv(h.domain, csv(row(1)), "user:test", false);
    const res = await importCsv(
      h.domain,
      csv(
        row(2, { bmc_address: `10.77.${seq}.3` }), // the IP of row 2 of this file
        row(3),
        row(4, { ip: `10.78.${seq}.1` }), // the BMC address of a machine in the database
        row(5, { bmc_address: `10.77.${seq}.1` }), // the IP of a machine in the database
      ),
      "user:test",
      true,
    );
    expect(res.errors.map((e) => [e.row, e.field, e.message])).toEqual([
      [2, "ip", `IP 10.77.${seq}.3 is also the BMC address on row 1 of this file`],
      [3, "ip", `IP 10.78.${seq}.1 is the BMC address of csv-${seq}-1`],
      [4, "bmc_address", `BMC address 10.77.${seq}.1 is the IP of csv-${seq}-1`],
    ]);
  });

  it.each([
    ["newline", "bm\nc"],
    ["NUL", "bmc\0x"],
    ["command substitution", "$(reboot)"],
    ["semicolon", "bmc;reboot"],
    ["ampersand", "bmc&reboot"],
    ["path", "../../etc"],
    ["quote", "bmc\"x"],
    ["over-long", "a".repeat(300)],
    ["non-ASCII", "bmç"],
  ])("refuses a hostile BMC address (%s) naming the row and column, and writes nothing", async (_what, address) => {
    await rack();
    const { details } = await importFails(csv(row(1, { bmc_address: address.includes(",") ? `"${address}"` : `"${address.replaceAll('"', '""')}"` })));
    expect(details).toEqual([expect.objectContaining({ row: 1, field: "bmc_address" })]);
  });

  it.each([
    ["newline", "pw\nx"],
    ["NUL", "pw\0x"],
    ["over 20 bytes", "p".repeat(21)],
    ["over 20 bytes in UTF-8", "ü".repeat(11)],
  ])("refuses a hostile BMC password (%s)", async (_what, password) => {
    await rack();
    const { details } = await importFails(csv(row(1, { bmc_password: `"${password}"` })));
    expect(details).toEqual([expect.objectContaining({ row: 1, field: "bmc_password" })]);
  });

  it("keeps shell and quote characters of a password inside its field", async () => {
    await rack();
    const res = await importCsv(h.domain, csv(row(1, { bmc_password: `"$(x);&'""\\"` })), "user:test", false);
    expect(res.imported).toBe(1);
    const m = await machineNamed(`csv-${seq}-1`);
    const b = await bmcOf(m.id);
    expect(h.domain.secrets.decrypt(b.passwordEncrypted)).toBe(`$(x);&'"\\`);
  });

  it("takes the OS profile by name in an os_profile column, and names an unknown one", async () => {
    await rack();
    const [prof] = await h.store.db
      .insert(h.store.t.osProfiles)
      .values({ name: `csv-prof-${seq}`, kind: "image", imageUrl: "http://127.0.0.1/i.raw", createdAt: new Date(), updatedAt: new Date() })
      .returning();
    const text = [`${HEADER},os_profile`, `${row(1)},csv-prof-${seq}`, `${row(2)},`, `${row(3)},no-such-profile`].join("\n");
    const dry = await importCsv(h.domain, text, "user:test", true);
    expect(dry.errors).toEqual([{ row: 3, field: "os_profile", message: 'No OS profile named "no-such-profile"' }]);
    expect(dry.rows.map((r) => r.osProfile)).toEqual([`csv-prof-${seq}`, null, null]);
    await importCsv(h.domain, text.split("\n").slice(0, 3).join("\n"), "user:test", false);
    expect((await machineNamed(`csv-${seq}-1`)).osProfileId).toBe(prof!.id);
    expect((await machineNamed(`csv-${seq}-2`)).osProfileId).toBeNull();
  });

  it("counts data rows, not lines: the header is not row 1", async () => {
    await rack();
    const { details } = await importFails(csv(row(1, { ip: "bad" })));
    expect(details[0]).toMatchObject({ row: 1, field: "ip" });
  });

  it("reports a row with too many fields", async () => {
    await rack();
    const { details } = await importFails(csv(row(1), row(2) + ",extra"));
    expect(details.some((d) => d.row === 2)).toBe(true);
  });

  describe("dry run", () => {
    it("previews a good CSV without writing anything", async () => {
      await rack();
      const before = await counts();
      const res = await importCsv(h.domain, csv(row(1), row(2)), "user:test", true);
      expect(res).toMatchObject({ ok: true, dryRun: true, imported: 0, errors: [] });
      expect(res.rows).toEqual([
        expect.objectContaining({ row: 1, name: `csv-${seq}-1`, rack: `csv-r${seq}`, uPosition: 1, ip: `10.77.${seq}.1`, bmcAddress: `10.78.${seq}.1` }),
        expect.objectContaining({ row: 2, name: `csv-${seq}-2` }),
      ]);
      expect(JSON.stringify(res)).not.toContain("pw-1");
      expect(await counts()).toEqual(before);
      // The same CSV still imports afterwards: the dry run left no trace.
      expect((await importCsv(h.domain, csv(row(1), row(2)), "user:test", false)).imported).toBe(2);
    });

    it("returns errors instead of throwing, and writes nothing", async () => {
      await rack();
      const before = await counts();
      const res = await importCsv(h.domain, csv(row(1), row(2, { mac: "bad" }), row(3, { name: `csv-${seq}-1` })), "user:test", true);
      expect(res.ok).toBe(false);
      expect(res.imported).toBe(0);
      expect(res.errors.map((e) => [e.row, e.field])).toEqual([
        [2, "mac"],
        [3, "name"],
      ]);
      expect(res.rows.map((r) => r.row)).toEqual([1, 3]);
      expect(await counts()).toEqual(before);
    });
  });

  describe("header", () => {
    it.each([
      ["name", "rack,u_position,mac\nr,1,52:54:00:00:00:01"],
      ["mac", "name,rack\nx,r"],
    ])("refuses a CSV without the %s column", async (column, text) => {
      const { details } = await importFails(text);
      expect(details).toHaveLength(1);
      expect(details[0]).toMatchObject({ row: 0, field: "header" });
      expect(details[0]!.message).toContain(`missing column(s) ${column}`);
    });

    it("refuses unknown columns, naming them", async () => {
      const { details } = await importFails("name,mac,colour,serial\nx,52:54:00:00:00:01,red,1");
      expect(details[0]).toMatchObject({ row: 0, field: "header" });
      expect(details[0]!.message).toContain("unknown column(s) colour, serial");
    });

    it("in a dry run returns header errors", async () => {
      const res = await importCsv(h.domain, "name,colour\nx,red", "user:test", true);
      expect(res.ok).toBe(false);
      expect(res.errors[0]!.message).toMatch(/missing column\(s\) mac.*unknown column\(s\) colour/);
    });

    it("refuses a CSV with only a header", async () => {
      const { details } = await importFails("name,mac\n");
      expect(details[0]!.message).toMatch(/no data rows/);
    });
  });

  describe("through the router", () => {
    it("imports for an operator and maps CSV_INVALID to BAD_REQUEST with row details", async () => {
      await rack();
      const ok = await h.operator.machines.importCsv({ csv: csv(row(1)) });
      expect(ok.imported).toBe(1);
      const { shape } = await expectTrpcError(
        h.operator.machines.importCsv({ csv: csv(row(2), row(3, { mac: "bad" })) }),
        "BAD_REQUEST",
        "CSV_INVALID",
      );
      expect(shape.data.details).toEqual([expect.objectContaining({ row: 2, field: "mac" })]);
      expect(shape.message).toContain("Row 2, field mac");
      const dry = await h.operator.machines.importCsv({ csv: csv(row(2), row(3, { mac: "bad" })), dryRun: true });
      expect(dry.ok).toBe(false);
    });
  });
});
