"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import type { BatchCounts, BatchDto, BatchState } from "@/lib/batches";
import type { LiveEvent } from "@/lib/live-events";
import { plural } from "@/lib/format";
import { useLive } from "./live";
import { NEEDS_OPERATOR, useSession } from "./session";
import { errorInfo, useTRPC } from "./trpc";
import { Dialog, ErrorBanner } from "./ui";

export const BATCH_STATE_STYLE: Record<BatchState, string> = {
  running: "bg-blue-50 text-blue-800 ring-blue-200",
  paused: "bg-amber-50 text-amber-900 ring-amber-300",
  finished: "bg-emerald-50 text-emerald-800 ring-emerald-200",
  aborted: "bg-slate-100 text-slate-700 ring-slate-300",
};

export function BatchStateBadge({ state }: { state: BatchState }) {
  return (
    <span className={`inline-flex rounded px-1.5 py-0.5 text-xs font-medium ring-1 ring-inset ${BATCH_STATE_STYLE[state]}`} data-testid="batch-state">
      {state}
    </span>
  );
}

/** Succeeded / failed / cancelled / running as one stacked bar over the batch total. */
export function BatchProgress({ counts }: { counts: BatchCounts }) {
  const pct = (n: number) => (counts.total ? (n / counts.total) * 100 : 0);
  const done = counts.succeeded + counts.failed + counts.cancelled;
  return (
    <div className="min-w-40">
      <div
        className="flex h-2 overflow-hidden rounded bg-slate-200"
        role="progressbar"
        aria-label="Batch progress"
        aria-valuemin={0}
        aria-valuemax={counts.total}
        aria-valuenow={done}
      >
        <div className="bg-emerald-500" style={{ width: `${pct(counts.succeeded)}%` }} />
        <div className="bg-red-500" style={{ width: `${pct(counts.failed)}%` }} />
        <div className="bg-slate-400" style={{ width: `${pct(counts.cancelled)}%` }} />
        <div className="animate-pulse bg-blue-400" style={{ width: `${pct(counts.running)}%` }} />
      </div>
      <div className="mt-1 text-xs text-slate-600" data-testid="batch-counts">
        {counts.succeeded} succeeded · {counts.failed} failed · {counts.running} running · {counts.queued} queued
        {counts.cancelled ? ` · ${counts.cancelled} cancelled` : ""}
      </div>
    </div>
  );
}

/**
 * Keeps every batch query fresh: batch and job events arrive in the fleet room (the gateway forwards them there),
 * and are coalesced into one invalidation per 250 ms.
 */
export function useBatchInvalidation() {
  const { socket } = useLive();
  const qc = useQueryClient();
  const trpc = useTRPC();
  useEffect(() => {
    if (!socket) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const onLive = (e: LiveEvent) => {
      const relevant = e.type === "batch.changed" || e.type === "batch.alert" || (e.type === "job.changed" && e.batchId !== null);
      if (!relevant || timer) return;
      timer = setTimeout(() => {
        timer = null;
        void qc.invalidateQueries({ queryKey: trpc.batches.pathKey() });
      }, 250);
    };
    socket.on("live", onLive);
    return () => {
      socket.off("live", onLive);
      if (timer) clearTimeout(timer);
    };
  }, [socket, qc, trpc]);
}

/** Resume and Abort for a paused or running batch (operators; viewers see them disabled). */
export function BatchControls({ batch, size = "btn-sm" }: { batch: BatchDto; size?: string }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const [aborting, setAborting] = useState(false);
  const [cancelRunning, setCancelRunning] = useState(false);
  const refresh = () => void qc.invalidateQueries({ queryKey: trpc.batches.pathKey() });
  const resume = useMutation(trpc.batches.resume.mutationOptions({ onSuccess: refresh }));
  const abort = useMutation(trpc.batches.abort.mutationOptions({ onSuccess: () => (setAborting(false), refresh()) }));
  const open = batch.state === "running" || batch.state === "paused";
  if (!open) return null;
  const denied = !can("operator");
  return (
    <>
      <div className="flex items-center gap-2">
        {batch.state === "paused" && (
          <button className={`btn btn-primary ${size}`} disabled={denied || resume.isPending} title={denied ? NEEDS_OPERATOR : undefined} onClick={() => resume.mutate({ id: batch.id })}>
            Resume
          </button>
        )}
        <button className={`btn btn-danger ${size}`} disabled={denied} title={denied ? NEEDS_OPERATOR : undefined} onClick={() => (setCancelRunning(false), setAborting(true))}>
          Abort
        </button>
      </div>
      <ErrorBanner message={resume.error ? errorInfo(resume.error).message : null} />
      <Dialog open={aborting} onClose={() => setAborting(false)} title={`Abort batch ${batch.id}?`}>
        <div className="space-y-3 text-sm">
          <p>
            The {plural(batch.counts.queued, "queued job")} will be cancelled; those machines stay as they are.
            {batch.counts.running > 0 && ` The ${plural(batch.counts.running, "running job")} finish unless you cancel them too.`}
          </p>
          {batch.counts.running > 0 && (
            <label className="flex items-start gap-2">
              <input type="checkbox" className="mt-1" checked={cancelRunning} onChange={(e) => setCancelRunning(e.target.checked)} />
              <span>
                Also cancel the {plural(batch.counts.running, "running job")}: their machines go to a failed state. Nothing is powered off.
              </span>
            </label>
          )}
          <ErrorBanner message={abort.error ? errorInfo(abort.error).message : null} />
          <div className="flex justify-end gap-2">
            <button className="btn" onClick={() => setAborting(false)}>
              Cancel
            </button>
            <button className="btn btn-danger" disabled={abort.isPending} onClick={() => abort.mutate({ id: batch.id, cancelRunning })}>
              Abort batch
            </button>
          </div>
        </div>
      </Dialog>
    </>
  );
}
