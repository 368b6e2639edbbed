"use client";
import { BulkResultsDialog } from "./bulk-results";
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import type { PowerResult } from "@/lib/dto";
import { plural } from "@/lib/format";
import { DISRUPTIVE_POWER_ACTIONS, POWER_ACTION_LABELS, POWER_ACTIONS, type PowerActionName } from "@/lib/schemas";
import { BATCH_KIND_LABELS, type BatchKind } from "@/lib/batches";
import { BatchStartForm } from "./batch-start";
import { resultSummary } from "./bulk-actions";
import { PlanConfirm } from "./plan-preview";
import type { Selection } from "@/lib/schemas";
import { NEEDS_OPERATOR, useSession } from "./session";
import { useTRPC } from "./trpc";
import { Dialog } from "./ui";

/** Power actions that also exist as batch kinds. */
const BATCH_OF: Partial<Record<PowerActionName, BatchKind>> = { on: "power_on", off: "power_off", cycle: "power_cycle" };
/**
 * Up to this many explicitly selected machines, power is immediate: one request, every outcome in a dialog within
 * seconds (oob.power runs 16 machines at a time). Larger selections and "all matching the filter" run on, off and
 * cycle as a batch: a concurrency limit, a failure threshold that pauses and alerts, progress on the batch page.
 */
export const IMMEDIATE_POWER_MAX = 16;

/**
 * Power actions over the table selection, each after the server's plan (machines without a BMC or busy with a job
 * are skipped, with the reason): off/cycle/reset/soft ask the operator to type the number of machines that will act.
 * Small selections get one outcome per machine at once; large ones start a power batch (see IMMEDIATE_POWER_MAX).
 */
export function BulkPower({ selection, count }: { selection: Selection; count: number }) {
  const trpc = useTRPC();
  const { can } = useSession();
  const [action, setAction] = useState<PowerActionName | null>(null);
  const [batchKind, setBatchKind] = useState<BatchKind | null>(null);
  const [results, setResults] = useState<PowerResult[] | null>(null);
  const run = useMutation(
    trpc.oob.power.mutationOptions({
      onSuccess: (r) => {
        setAction(null);
        setResults(r);
      },
    }),
  );
  const asBatch = "filter" in selection || count > IMMEDIATE_POWER_MAX;
  const start = (a: PowerActionName) => {
    const kind = BATCH_OF[a];
    run.reset();
    if (asBatch && kind) setBatchKind(kind);
    else setAction(a);
  };
  return (
    <>
      <div className="flex flex-wrap items-center gap-1.5" role="group" aria-label="Bulk power">
        {POWER_ACTIONS.map((a) => (
          <button
            key={a}
            className="btn btn-sm"
            disabled={!can("operator") || count === 0 || run.isPending}
            title={!can("operator") ? NEEDS_OPERATOR : undefined}
            onClick={() => start(a)}
          >
            {POWER_ACTION_LABELS[a]}
          </button>
        ))}
        {run.isPending && <span className="text-xs text-slate-500">talking to BMCs…</span>}
      </div>
      <Dialog open={!!action} onClose={() => setAction(null)} title={action ? `${POWER_ACTION_LABELS[action]}: ${plural(count, "selected machine")}` : ""} wide>
        {action && (
          <PlanConfirm
            selection={selection}
            op={{ type: "power", action }}
            typed={DISRUPTIVE_POWER_ACTIONS.includes(action)}
            danger={DISRUPTIVE_POWER_ACTIONS.includes(action)}
            confirmLabel={POWER_ACTION_LABELS[action]}
            pending={run.isPending}
            error={run.error}
            onCancel={() => setAction(null)}
            onConfirm={(planId) => run.mutate({ selection, action, planId })}
          >
            {DISRUPTIVE_POWER_ACTIONS.includes(action) && (
              <p className="text-sm">
                <b>{POWER_ACTION_LABELS[action]}</b> interrupts whatever runs on the acting machines. Machines whose power state cannot be read are
                reported after.
              </p>
            )}
          </PlanConfirm>
        )}
      </Dialog>
      <Dialog open={!!batchKind} onClose={() => setBatchKind(null)} title={batchKind ? `${BATCH_KIND_LABELS[batchKind]} as a batch: ${plural(count, "selected machine")}` : ""} wide>
        {batchKind && <BatchStartForm kind={batchKind} selection={selection} onCancel={() => setBatchKind(null)} />}
      </Dialog>
      <BulkResultsDialog
        rows={
          results?.map((r) => ({ id: r.id, name: r.name, ok: r.ok, text: r.ok ? `power ${r.powerState}` : r.skipped ? `skipped: ${r.error ?? ""}` : (r.error ?? "failed") })) ??
          null
        }
        title="Power action results"
        summary={results ? resultSummary(results, "switched") : ""}
        summaryTestId="power-summary"
        onClose={() => setResults(null)}
      />
    </>
  );
}
