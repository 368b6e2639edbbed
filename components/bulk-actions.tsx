"use client";
import { BulkResultsDialog, TypedCount, typedCountMatches } from "./bulk-results";
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { batchKindOf } from "@/lib/batches";
import type { BulkResult } from "@/lib/dto";
import { ACTION_LABELS, DESTRUCTIVE_ACTIONS, OPERATOR_ACTIONS, type OperatorAction } from "@/lib/lifecycle";
import type { Selection } from "@/lib/schemas";
import { plural } from "@/lib/format";
import { BatchStartForm } from "./batch-start";
import { NEEDS_OPERATOR, useSession } from "./session";
import { errorInfo, useTRPC } from "./trpc";
import { Dialog, ErrorBanner } from "./ui";

/**
 * Lifecycle actions over the selection. Deploy, reinstall, release and inspect start a batch (BatchStartForm); the
 * others apply at once, with a typed-count confirmation for destructive ones and a per-machine report.
 */
export function BulkActions({ selection, count, onDone }: { selection: Selection; count: number; onDone: () => void }) {
  const trpc = useTRPC();
  const { can } = useSession();
  const [action, setAction] = useState<OperatorAction | null>(null);
  const [typed, setTyped] = useState("");
  const [results, setResults] = useState<BulkResult[] | null>(null);
  const run = useMutation(
    trpc.machines.bulkAction.mutationOptions({
      onSuccess: (r) => {
        setAction(null);
        setResults(r);
        onDone();
      },
    }),
  );
  const destructive = action ? DESTRUCTIVE_ACTIONS.includes(action) : false;
  // Actions that run a job on each machine start a batch (concurrency limit, failure threshold, batch page).
  const batchKind = action ? batchKindOf(action) : undefined;
  const failed = results?.filter((r) => !r.ok) ?? [];

  return (
    <>
      <div className="flex flex-wrap items-center gap-1.5" role="group" aria-label="Bulk actions">
        {OPERATOR_ACTIONS.map((a) => (
          <button
            key={a}
            className="btn btn-sm"
            disabled={!can("operator") || count === 0}
            title={!can("operator") ? NEEDS_OPERATOR : undefined}
            onClick={() => {
              setTyped("");
              setAction(a);
            }}
          >
            {ACTION_LABELS[a]}
          </button>
        ))}
      </div>
      <Dialog open={!!action} onClose={() => setAction(null)} title={action ? `${ACTION_LABELS[action]} ${plural(count, "machine")}?` : ""}>
        {action && batchKind && <BatchStartForm kind={batchKind} selection={selection} count={count} onCancel={() => setAction(null)} />}
        {action && !batchKind && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              run.mutate({ selection, action });
            }}
            className="space-y-3"
          >
            <p className="text-sm text-slate-700">
              Machines whose state does not allow <b>{ACTION_LABELS[action]}</b> are skipped and reported; the others proceed.
            </p>
            {destructive && (
              <TypedCount count={count} value={typed} onChange={setTyped} />
            )}
            <ErrorBanner message={run.error ? errorInfo(run.error).message : null} />
            <div className="flex justify-end gap-2">
              <button type="button" className="btn" onClick={() => setAction(null)}>
                Cancel
              </button>
              <button
                type="submit"
                className={`btn ${destructive ? "btn-danger" : "btn-primary"}`}
                disabled={run.isPending || (destructive && !typedCountMatches(typed, count))}
              >
                {ACTION_LABELS[action]} {plural(count, "machine")}
              </button>
            </div>
          </form>
        )}
      </Dialog>
      <BulkResultsDialog
        rows={results?.map((r) => ({ id: r.id, name: r.name, ok: r.ok, text: r.ok ? `→ ${r.state}` : (r.error ?? "refused") })) ?? null}
        title="Bulk action results"
        summary={`${(results?.length ?? 0) - failed.length} succeeded, ${failed.length} refused.`}
        summaryTestId="bulk-summary"
        onClose={() => setResults(null)}
      />
    </>
  );
}
