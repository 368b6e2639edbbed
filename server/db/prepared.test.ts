/** insertRow: the prepared single-row insert behaves as drizzle's insert for defaults, nulls and mapped values. */
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "../testing/harness";
import { insertRow } from "./prepared";
import { machines } from "./schema";

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(() => h.close());

describe("insertRow", () => {
  it("an undefined field takes the schema's default; null stays null; a Date is stored as drizzle stores it", () => {
    const now = new Date(1_700_000_000_123);
    const id = insertRow(h.db, machines, ["name", "uHeight", "rackId", "firmware", "createdAt", "updatedAt"])({ name: "m-1", uHeight: undefined, rackId: null, firmware: undefined, createdAt: now, updatedAt: now });
    const m = h.db.select().from(machines).where(eq(machines.id, id)).get()!;
    expect(m).toMatchObject({ name: "m-1", uHeight: 1, rackId: null, firmware: "auto", createdAt: now });
  });

  it("the same shape again with values given uses them (one statement per shape)", () => {
    const ins = insertRow(h.db, machines, ["name", "uHeight", "createdAt", "updatedAt"]);
    expect(insertRow(h.db, machines, ["name", "uHeight", "createdAt", "updatedAt"])).toBe(ins);
    const id = ins({ name: "m-2", uHeight: 4, createdAt: new Date(), updatedAt: new Date() });
    expect(h.db.select().from(machines).where(eq(machines.id, id)).get()!.uHeight).toBe(4);
  });
});
