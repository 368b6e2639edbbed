import pg from "pg";

/**
 * Counts the statements this process sends to PostgreSQL: every node-postgres `Client.query` (a pool's query, a
 * transaction's BEGIN, its statements and its COMMIT all go through it), by the statement's first 100 characters of
 * SQL text. Each one is a round trip to a backend. Install before the work to count; `take()` returns the counts since
 * install (or the last take) and starts again.
 */
export function countPgStatements(): { take(): { total: number; byText: Map<string, number> } } {
  let byText = new Map<string, number>();
  let total = 0;
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const q = args[0] as string | { text?: string } | undefined;
    const text = typeof q === "string" ? q : (q?.text ?? "?");
    const key = text.replace(/\s+/g, " ").trim().slice(0, 100);
    byText.set(key, (byText.get(key) ?? 0) + 1);
    total++;
    return original.apply(this, args);
  };
  return {
    take() {
      const r = { total, byText };
      byText = new Map();
      total = 0;
      return r;
    },
  };
}
