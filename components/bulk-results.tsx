"use client";
import { Dialog } from "./ui";

export interface OutcomeRow {
  id: number;
  name: string;
  ok: boolean;
  /** What happened to this machine: its new state, or the error. */
  text: string;
}

/** The per-machine outcome of a bulk action: a summary line and one row per machine. */
export function BulkResultsDialog({
  rows,
  title,
  summary,
  summaryTestId,
  onClose,
}: {
  rows: OutcomeRow[] | null;
  title: string;
  summary: string;
  summaryTestId: string;
  onClose: () => void;
}) {
  return (
    <Dialog open={!!rows} onClose={onClose} title={title} wide>
      {rows && (
        <div>
          <p className="mb-2 text-sm" data-testid={summaryTestId}>
            {summary}
          </p>
          <div className="max-h-96 overflow-auto rounded border border-slate-200">
            <table className="w-full text-sm">
              <tbody className="divide-y divide-slate-100">
                {rows.map((r) => (
                  <tr key={r.id}>
                    <td className="px-2 py-1 font-medium">{r.name}</td>
                    <td className={`px-2 py-1 ${r.ok ? "text-emerald-700" : "text-red-700"}`}>{r.text}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      )}
    </Dialog>
  );
}

/** "Type N to confirm" for destructive bulk actions. */
export function TypedCount({ count, value, onChange }: { count: number; value: string; onChange: (v: string) => void }) {
  return (
    <label className="block text-sm">
      Type <b>{count}</b> to confirm:
      <input className="input mt-1" inputMode="numeric" aria-label="Type the number of machines" value={value} onChange={(e) => onChange(e.target.value)} autoFocus />
    </label>
  );
}

export const typedCountMatches = (typed: string, count: number) => typed.trim() === String(count);
