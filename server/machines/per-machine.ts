import { inArray } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { Domain } from "../context";
import { storeOf } from "../db/store";

export type PerMachineResult<T> = ({ id: number; name: string; ok: true } & T) | { id: number; name: string; ok: false; error: string; code: AppError["code"] };

/**
 * Run `fn` for every machine, at most `concurrency` at a time, and give each machine its own outcome: an AppError
 * becomes that machine's failure and never stops the others (any other error is a bug and propagates).
 * Results are in the order of `ids`.
 */
export async function forEachMachine<T extends object>(
  d: Domain,
  ids: number[],
  concurrency: number,
  fn: (id: number) => Promise<T>,
): Promise<PerMachineResult<T>[]> {
  const store = storeOf(d);
  const { machines } = store.t;
  const names = new Map<number, string>();
  // In chunks: an IN list of 10,000 bound parameters is more than PostgreSQL's drivers like in one statement.
  for (let i = 0; i < ids.length; i += 1000) {
    for (const m of await store.db.select({ id: machines.id, name: machines.name }).from(machines).where(inArray(machines.id, ids.slice(i, i + 1000)))) names.set(m.id, m.name);
  }
  const results = new Array<PerMachineResult<T>>(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      const name = names.get(id) ?? `#${id}`;
      try {
        results[i] = { id, name, ok: true, ...(await fn(id)) };
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        results[i] = { id, name, ok: false, error: err.message, code: err.code };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return results;
}
