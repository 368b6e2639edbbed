import { AppError } from "../../lib/errors";

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
 * Check that a machine fits where it is placed: the rack exists, the U range lies inside the rack's height, and no
 * other machine occupies any U of it; a machine may be unracked (no rack, no U). Over given lookups: the rack by id,
 * and a machine occupying any U of [bottom, top] in a rack (enroll-queries.ts storeCheckPlacement on the Store; bulk
 * enrollment answers them from memory and prepared statements).
 * @throws AppError RACK_NOT_FOUND, VALIDATION, U_OUT_OF_RANGE, U_OVERLAP (with field details)
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
