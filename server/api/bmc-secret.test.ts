/**
 * DESIGN §10: BMC passwords are encrypted at rest and never returned to the browser. Every query an admin can
 * call, every mutation result and every live event is searched for the password and for its ciphertext.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MACHINE_ROW_FIELDS } from "../../lib/schemas";
import { bmcs, events } from "../db/schema";
import { machineInput, procedureAt, procedures } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";

// At most 20 bytes each: enrollment refuses longer IPMI passwords (LONG_PASSWORD checks that refusal's message).
const PASSWORD = "Zq9-BMC-p4ss-UNQ-771";
const PASSWORD_2 = "Wx4-CHG-bmc-SEC-0042";
const CSV_PASSWORD = "Cv3-CSV-bmc-SEC-5151";
const LONG_PASSWORD = "Lp7-much-too-long-for-IPMI-SECRET-88";
/** Short enough for IPMI (20 bytes), so ipmitool really runs with it. */
const IPMI_PASSWORD = "Ip3-short-SECRET-99";

let h: Harness;
const ids: number[] = [];
let rackId: number;
/** Everything the server handed back to callers in this file. */
const outputs: unknown[] = [];

/** Needles: the passwords, and each stored ciphertext plus its ciphertext part (the part most likely echoed). */
function needles(): string[] {
  const sealed = h.db.select({ p: bmcs.passwordEncrypted }).from(bmcs).all().map((r) => r.p);
  expect(sealed.length).toBeGreaterThanOrEqual(ids.length);
  return [PASSWORD, PASSWORD_2, CSV_PASSWORD, IPMI_PASSWORD, LONG_PASSWORD, ...sealed, ...sealed.map((s) => s.split(":")[3]!), ...sealed.map((s) => s.split(":")[2]!)];
}

function expectClean(label: string, value: unknown) {
  const text = JSON.stringify(value) ?? "";
  for (const needle of needles()) expect(text.includes(needle), `${label} contains ${needle}`).toBe(false);
}

beforeAll(async () => {
  h = createHarness({ oob: { callTimeoutMs: 500, attempts: 1 } });
  rackId = (await h.operator.racks.create({ name: "secret-rack", heightU: 42 })).id;
  for (let i = 1; i <= 3; i++) {
    // The third is on the fake driver so "manage" (which verifies the BMC) succeeds.
    const driver = i === 3 ? ("fake" as const) : ("ipmitool" as const);
    const r = await h.operator.machines.enroll(
      machineInput(i, { rackId, uPosition: i, bmc: { driver, address: `10.66.0.${i}`, username: "ADMIN", password: PASSWORD } }),
    );
    outputs.push(r);
    ids.push(r.id);
  }
  // Change one BMC's password, move one machine through the lifecycle, and import more by CSV.
  outputs.push(
    await h.operator.machines.update({
      id: ids[0]!,
      bmc: { address: "10.66.0.101", username: "ADMIN", password: PASSWORD_2 },
    }),
  );
  // Keep the stored password when the form leaves it empty.
  outputs.push(await h.operator.machines.update({ id: ids[1]!, bmc: { address: "10.66.0.102", username: "root" } }));
  outputs.push(await h.operator.machines.action({ id: ids[2]!, action: "manage" }));
  // An over-long IPMI password is refused at enrollment; the refusal must not echo it.
  try {
    await h.operator.machines.enroll(machineInput(43, { bmc: { address: "10.66.0.43", username: "ADMIN", password: LONG_PASSWORD } }));
    throw new Error("an over-long IPMI password was accepted");
  } catch (err) {
    expect((err as Error).message).toMatch(/at most 20 bytes/);
    outputs.push({ message: (err as Error).message, cause: String((err as Error).cause) });
  }
  // Out-of-band calls: fake driver (succeeds), ipmitool against unreachable addresses, and ipmitool really run
  // against a closed port (fails after running).
  outputs.push(await h.operator.oob.power({ selection: { ids: [ids[2]!] }, action: "off" }));
  outputs.push(await h.operator.oob.bootDevice({ id: ids[2]!, device: "pxe" }));
  outputs.push(await h.operator.oob.checkBmc({ id: ids[2]! }));
  outputs.push(await h.operator.oob.checkBmc({ id: ids[1]! }));
  outputs.push(await h.operator.oob.power({ selection: { ids: [ids[0]!, ids[1]!] }, action: "cycle" }));
  const ipmi = await h.operator.machines.enroll(
    machineInput(40, { bmc: { address: "127.0.0.1", port: 9, username: "ADMIN", password: IPMI_PASSWORD } }),
  );
  outputs.push(ipmi);
  outputs.push(await h.operator.oob.checkBmc({ id: ipmi.id }));
  outputs.push(await h.operator.oob.power({ selection: { ids: [ipmi.id] }, action: "on" }));
  try {
    await h.operator.machines.action({ id: ipmi.id, action: "manage" });
  } catch (err) {
    outputs.push({ message: (err as Error).message, cause: String((err as Error).cause) });
  }
  outputs.push(await h.operator.machines.setMaintenance({ id: ids[2]!, on: true, reason: "check" }));
  const csv = `name,mac,bmc_address,bmc_user,bmc_password\ncsv-secret,52:54:00:5e:c0:01,10.66.1.1,root,${CSV_PASSWORD}`;
  outputs.push(await h.operator.machines.importCsv({ csv, dryRun: true }));
  outputs.push(await h.operator.machines.importCsv({ csv }));
  // A refused enrolment with a BMC password: its error must not echo the password either.
  try {
    await h.operator.machines.enroll(machineInput(1, { bmc: { address: "10.66.0.9", username: "x", password: PASSWORD } }));
  } catch (err) {
    outputs.push({ message: (err as Error).message, cause: String((err as Error).cause) });
  }
});
afterAll(() => h.close());

describe("BMC passwords", () => {
  it("are stored encrypted, and decrypt to what was entered", () => {
    const rows = h.db.select().from(bmcs).all();
    expect(rows).toHaveLength(5);
    const byId = new Map(rows.map((r) => [r.machineId, r]));
    expect(h.domain.secrets.decrypt(byId.get(ids[0]!)!.passwordEncrypted)).toBe(PASSWORD_2);
    expect(h.domain.secrets.decrypt(byId.get(ids[1]!)!.passwordEncrypted)).toBe(PASSWORD);
    expect(h.domain.secrets.decrypt(byId.get(ids[2]!)!.passwordEncrypted)).toBe(PASSWORD);
    for (const r of rows) expect(r.passwordEncrypted).not.toMatch(/Zq9|Wx4|Cv3/);
  });

  it("the needles are real: the detector finds a planted ciphertext", () => {
    const sealed = h.db.select().from(bmcs).where(eq(bmcs.machineId, ids[1]!)).get()!.passwordEncrypted;
    expect(() => expectClean("planted", { x: `..${sealed}..` })).toThrow();
    expect(() => expectClean("planted", { x: PASSWORD })).toThrow();
  });

  it("never appear in any query an admin can call", async () => {
    const plain = await h.operator.machines.enroll(machineInput(42, { bmc: { driver: "fake", address: "10.66.0.42", username: "u", password: "p" } }));
    await h.operator.machines.action({ id: plain.id, action: "manage" });
    const { batchId } = await h.operator.batches.create({ selection: { ids: [plain.id] }, kind: "inspect" });
    const { id: subnetId } = await h.admin.subnets.create({ name: "secret-subnet", cidr: "10.66.0.0/24" });
    const inputs: Record<string, unknown[]> = {
      "auth.me": [undefined],
      "racks.list": [undefined],
      "racks.elevations": [undefined, { rackIds: [rackId] }],
      "machines.list": [{}, { q: "node" }, { pageSize: 1000 }, { sort: "ip" }],
      "machines.listFields": [{ fields: [...MACHINE_ROW_FIELDS] }, { fields: [...MACHINE_ROW_FIELDS], pageSize: 2000, q: "node" }],
      "machines.count": [{}],
      "machines.summary": [undefined],
      "machines.get": ids.map((id) => ({ id })),
      "machines.network": ids.map((id) => ({ id })),
      "subnets.list": [undefined],
      "subnets.get": [{ id: subnetId }],
      "events.facets": [undefined],
      "events.list": [{}, { limit: 500 }, ...ids.map((machineId) => ({ machineId, limit: 500 }))],
      "users.list": [undefined],
      "oob.syncSettings": [undefined],
      "oob.syncStatus": [undefined],
      "osProfiles.list": [undefined],
      "netboot.settings": [undefined],
      "netboot.status": [undefined],
      "jobs.forMachine": ids.map((machineId) => ({ machineId })),
      "jobs.logs": [{ jobId: 1 }],
      "jobs.get": [{ jobId: 1 }],
      "tokens.list": [undefined, { all: true }],
      "batches.list": [{}],
      "batches.get": [{ id: batchId }],
      "batches.alerts": [undefined],
      "batches.settings": [undefined],
    };
    const queries = procedures().filter((p) => p.type === "query").map((p) => p.path);
    // A new query must be added here, so it is checked too.
    expect(Object.keys(inputs).sort()).toEqual([...queries].sort());
    for (const path of queries) {
      for (const input of inputs[path]!) {
        const out = await procedureAt(h.admin, path)(input);
        expect(out, path).toBeDefined();
        expectClean(`${path}(${JSON.stringify(input)})`, out);
      }
    }
    // The BMC is still described, only without its secret.
    const m = await h.admin.machines.get({ id: ids[0]! });
    expect(m.bmc).toEqual(expect.objectContaining({ address: "10.66.0.101", username: "ADMIN", hasPassword: true }));
    expect(Object.keys(m.bmc!)).not.toContain("password");
    expect(Object.keys(m.bmc!)).not.toContain("passwordEncrypted");
  });

  it("never appear in mutation results or errors", () => {
    expect(outputs.length).toBeGreaterThanOrEqual(9);
    outputs.forEach((o, i) => expectClean(`mutation output #${i}`, o));
  });

  it("never appear in live events", () => {
    expect(h.published.length).toBeGreaterThan(5);
    expect(h.published.some((e) => e.type === "event.created")).toBe(true);
    h.published.forEach((e, i) => expectClean(`live event #${i} (${e.type})`, e));
  });

  it("never appear in the audit log", () => {
    const rows = h.db.select().from(events).all();
    expect(rows.length).toBeGreaterThan(5);
    expectClean("events table", rows);
  });
});
