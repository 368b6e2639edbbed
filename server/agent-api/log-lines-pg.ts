import type pg from "pg";
import type { AgentLogLine } from "../../lib/agent-protocol";
import type { LogLineDto } from "../../lib/jobs";

/**
 * PostgreSQL: a batch of a step's log lines in ONE statement, a named prepared statement (parsed and planned once
 * per pooled connection) over four arrays. It replaced drizzle's multi-row INSERT in a transaction: three round trips,
 * 6,000 parameters and the SQL text built and parsed for every batch (20,000 lines/s in bench:deploy --db postgres).
 *
 * - Resends: `ON CONFLICT (job_id, seq) DO NOTHING` skips a line already stored, so a retried batch is stored once.
 * - Order: rows go in by seq (then by their place in the batch): two batches racing over the same seqs take the
 *   unique index's entries in the same order, so neither waits on the other in a cycle; of two lines with one seq in
 *   a batch the first is kept, as on SQLite.
 * - Values: the arrays travel as PostgreSQL array literals, which node-postgres quotes (quotes, backslashes, commas,
 *   braces, newlines, non-ASCII are data). `ts` is sent as drizzle sends a Date (toISOString, which throws on a
 *   time out of range as drizzle's insert did). A NUL must be replaced before (text cannot hold it).
 * - One statement is atomic without a transaction: a batch is stored whole or not at all.
 */
const INSERT_LINES = {
  name: "rh_log_lines_batch",
  text: `INSERT INTO log_lines (job_id, step_id, seq, ts, stream, text)
    SELECT $1::int, $2::int, u.seq, u.ts::timestamptz, u.stream, u.text
    FROM unnest($3::int[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(seq, ts, stream, text, ord)
    ORDER BY u.seq, u.ord
    ON CONFLICT (job_id, seq) DO NOTHING
    RETURNING seq`,
};

/** Insert lines (NUL already replaced); returns those stored now (not resends), by seq. */
export function pgLineInserter(pool: pg.Pool): (jobId: number, stepId: number, lines: AgentLogLine[]) => Promise<LogLineDto[]> {
  return async (jobId, stepId, lines) => {
    const ts = lines.map((l) => new Date(l.ts).toISOString());
    const res = await pool.query<{ seq: number }>({
      ...INSERT_LINES,
      values: [jobId, stepId, lines.map((l) => l.seq), ts, lines.map((l) => l.stream), lines.map((l) => l.text)],
    });
    if (!res.rows.length) return [];
    // The first line of each seq is the one stored.
    const bySeq = new Map<number, AgentLogLine>();
    for (const l of lines) if (!bySeq.has(l.seq)) bySeq.set(l.seq, l);
    return res.rows
      .map((r) => r.seq)
      .sort((a, b) => a - b)
      .map((seq) => {
        const l = bySeq.get(seq)!;
        return { seq, ts: l.ts, stream: l.stream, text: l.text, stepId };
      });
  };
}
