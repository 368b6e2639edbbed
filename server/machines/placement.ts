import { and, eq, ne, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { Db } from "../db/client";
import { preparedFor } from "../db/prepared";
import { machines, racks } from "../db/schema";

export interface Placement {
  rackId?: number | null;
  uPosition?: number | null;
  uHeight: number;
}

/** A machine occupying U positions of a rack (for a clash message). */
export interface Occupant {
  name: string;
  u: number | null;
  h: number;
}

/**
 * Check that a machine fits where it is placed: the rack exists, the U range lies inside the rack's height,
 * and no other machine occupies any U of it. A machine may be unracked (no rack, no U).
 * @throws AppError RACK_NOT_FOUND, VALIDATION, U_OUT_OF_RANGE, U_OVERLAP (with field details)
 */
export function checkPlacement(db: Db, p: Placement, excludeMachineId?: number): void {
  // Enrollment and edits run this for every machine: prepared once per database (run on its connection, so inside
  // an open transaction it sees that transaction's rows).
  const q = preparedFor(db, "machines.placement", () => ({
    rack: db.select({ name: racks.name, heightU: racks.heightU }).from(racks).where(eq(racks.id, sql.placeholder("id"))).prepare(),
    clash: db
      .select({ name: machines.name, u: machines.uPosition, h: machines.uHeight })
      .from(machines)
      .where(
        and(
          eq(machines.rackId, sql.placeholder("rackId")),
          ne(machines.id, sql.placeholder("exclude")),
          // Ranges [u, u+h-1] and [pos, top] intersect.
          sql`${machines.uPosition} <= ${sql.placeholder("top")} AND ${machines.uPosition} + ${machines.uHeight} - 1 >= ${sql.placeholder("bottom")}`,
        ),
      )
      .prepare(),
  }));
  checkPlacementWith(
    p,
    (id) => q.rack.get({ id }),
    // Ids start at 1: excluding 0 excludes nothing.
    (rackId, bottom, top) => q.clash.get({ rackId, exclude: excludeMachineId ?? 0, top, bottom }),
  );
}

/**
 * checkPlacement() over given lookups: the rack by id, and a machine occupying any U of [bottom, top] in a rack
 * (bulk enrollment answers these from memory and prepared statements).
 */
export function checkPlacementWith(
  p: Placement,
  rackOf: (id: number) => { name: string; heightU: number } | undefined,
  clashOf: (rackId: number, bottom: number, top: number) => Occupant | undefined,
): void {
  if (p.rackId == null) {
    if (p.uPosition != null) {
      throw new AppError("VALIDATION", "A U position needs a rack", [{ field: "uPosition", message: "Choose a rack first" }]);
    }
    return;
  }
  const rack = rackOf(p.rackId);
  if (!rack) throw new AppError("RACK_NOT_FOUND", `Rack ${p.rackId} does not exist`, [{ field: "rackId", message: "No such rack" }]);
  if (p.uPosition == null) {
    throw new AppError("VALIDATION", "A racked machine needs a U position", [{ field: "uPosition", message: "Required" }]);
  }
  const top = p.uPosition + p.uHeight - 1;
  if (top > rack.heightU) {
    throw new AppError(
      "U_OUT_OF_RANGE",
      `U${p.uPosition}${p.uHeight > 1 ? `-U${top}` : ""} does not fit in rack ${rack.name} (${rack.heightU}U)`,
      [{ field: "uPosition", message: `Must be between 1 and ${rack.heightU - p.uHeight + 1}` }],
    );
  }
  const clash = clashOf(p.rackId, p.uPosition, top);
  if (clash) {
    const range = clash.h > 1 ? `U${clash.u}-U${clash.u! + clash.h - 1}` : `U${clash.u}`;
    throw new AppError("U_OVERLAP", `${range} of rack ${rack.name} is taken by ${clash.name}`, [
      { field: "uPosition", message: `Overlaps ${clash.name} (${range})` },
    ]);
  }
}
