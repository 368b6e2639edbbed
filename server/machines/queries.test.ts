import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SORT_FIELDS } from "../../lib/schemas";
import { createHarness, type Harness } from "../testing/harness";
import { enrollMachine } from "./enroll";
import { transition } from "./lifecycle";
import { listMachines } from "./queries";

let h: Harness;
beforeAll(async () => {
  h = createHarness();
  const racks = [await h.admin.racks.create({ name: "qa", heightU: 42 }), await h.admin.racks.create({ name: "qb", heightU: 42 })];
  for (let i = 0; i < 30; i++) {
    const { id } = enrollMachine(
      h.domain,
      {
        name: `q-${(i * 7) % 30}-${i}`,
        bootMac: `52:54:00:0a:00:${i.toString(16).padStart(2, "0")}`,
        ip: i % 4 === 0 ? null : `10.${i % 3}.0.${(i * 13) % 250}`,
        rackId: i % 3 === 0 ? null : racks[i % 2]!.id,
        uPosition: i % 3 === 0 ? null : i + 1,
        uHeight: 1,
      },
      "test",
    );
    if (i % 2) transition(h.domain, id, "manage", { actor: "test" });
  }
});
afterAll(() => h.close());

describe("listMachines paging", () => {
  it.each(SORT_FIELDS.flatMap((s) => [[s, "asc"] as const, [s, "desc"] as const]))(
    "pages sorted by %s %s concatenate to the one-query listing",
    (sort, dir) => {
      const all = listMachines(h.db, { sort, dir, page: 1, pageSize: 5000 });
      expect(all.total).toBe(30);
      const paged = [1, 2, 3, 4, 5].flatMap((page) => listMachines(h.db, { sort, dir, page, pageSize: 7 }).rows);
      expect(paged.map((r) => r.id)).toEqual(all.rows.map((r) => r.id));
      expect(paged).toEqual(all.rows);
    },
  );

  it("applies the filter to both the page and the total", () => {
    const r = listMachines(h.db, { states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 3 });
    const every = listMachines(h.db, { states: ["manageable"], q: "q-1", sort: "name", dir: "asc", page: 1, pageSize: 5000 });
    expect(r.total).toBe(every.total);
    expect(r.rows).toEqual(every.rows.slice(0, 3));
    expect(every.rows.every((m) => m.state === "manageable" && m.name.includes("q-1"))).toBe(true);
  });
});
