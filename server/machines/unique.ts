import { AppError } from "../../lib/errors";
import { pgErrorCode, type Store } from "../db/store";

/**
 * Run a check-then-insert transaction (`run` starts it) so a clash ends in the same clear CONFLICT on both databases.
 * SQLite's `BEGIN IMMEDIATE` serialises writers, so the transaction's own checks (name, MAC, IP…) always see a
 * competing row. On PostgreSQL (READ COMMITTED) two transactions can both pass the checks; the unique index refuses
 * the later one (23505). It is then run once more: its checks now see the committed row and throw the same error
 * as SQLite gives. A second 23505 (a row that keeps coming back) becomes a generic CONFLICT naming the constraint.
 */
export async function uniqueGuarded<T>(store: Store, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (store.dialect !== "postgres" || pgErrorCode(err) !== "23505") throw err;
      if (attempt >= 2) throw new AppError("CONFLICT", `Another change took the same value meanwhile (${constraintOf(err) ?? "unique index"}): try again`);
    }
  }
}

function constraintOf(err: unknown): string | undefined {
  for (let e = err as { constraint?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.constraint === "string") return e.constraint;
  }
  return undefined;
}
