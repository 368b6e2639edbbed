"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { BATCH_KIND_LABELS } from "@/lib/batches";
import { BatchControls, useBatchInvalidation } from "./batch-controls";
import { useTRPC } from "./trpc";

/**
 * The alert banner above every page: one line per paused batch (its failure ratio passed the threshold), with
 * Resume and Abort. Appears live when the runner pauses a batch (batch.alert over socket.io).
 */
export function AlertBanner() {
  const trpc = useTRPC();
  useBatchInvalidation();
  const { data } = useQuery(trpc.batches.alerts.queryOptions());
  if (!data?.length) return null;
  return (
    <div className="mb-4 space-y-2" role="region" aria-label="Alerts">
      {data.map((b) => (
        <div key={b.id} role="alert" className="flex flex-wrap items-center justify-between gap-3 rounded-md border border-amber-300 bg-amber-50 px-4 py-2.5 text-sm text-amber-950" data-testid="batch-alert">
          <div>
            <b>
              {BATCH_KIND_LABELS[b.kind]} batch {b.id} paused.
            </b>{" "}
            {b.alert?.message.replace(/^Batch \d+ \([^)]*\): /, "") ?? `${b.counts.failed} of ${b.counts.total} jobs failed.`}{" "}
            <Link href={`/batches/${b.id}`} className="font-medium text-blue-800 underline">
              View batch
            </Link>
            {b.alert?.webhook.state === "failed" && <span className="ml-2 text-red-700">(webhook failed: {b.alert.webhook.error})</span>}
          </div>
          <BatchControls batch={b} />
        </div>
      ))}
    </div>
  );
}
