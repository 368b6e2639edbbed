"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { BATCH_KIND_LABELS } from "@/lib/batches";
import { dateTime, relativeTime } from "@/lib/format";
import { BatchProgress, BatchStateBadge } from "@/components/batch-controls";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ErrorBanner, PageHeader } from "@/components/ui";

export default function BatchesPage() {
  const trpc = useTRPC();
  const { data, error } = useQuery(trpc.batches.list.queryOptions({}));
  return (
    <div>
      <PageHeader title="Batches" subtitle="Bulk deploy, reinstall, clean and inspect: start one from the machine table's selection." />
      <ErrorBanner message={error ? errorInfo(error).message : null} />
      <div className="card overflow-x-auto">
        <table className="w-full text-sm" aria-label="Batches">
          <thead className="bg-slate-50 text-left text-xs uppercase tracking-wide text-slate-500">
            <tr>
              <th className="px-3 py-2">Batch</th>
              <th className="px-3 py-2">Kind</th>
              <th className="px-3 py-2">State</th>
              <th className="px-3 py-2">Progress</th>
              <th className="px-3 py-2">Limits</th>
              <th className="px-3 py-2">Created</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {data?.map((b) => (
              <tr key={b.id} data-testid={`batch-row-${b.id}`}>
                <td className="px-3 py-2 font-medium">
                  <Link href={`/batches/${b.id}`} className="text-blue-700 hover:underline">
                    Batch {b.id}
                  </Link>
                </td>
                <td className="px-3 py-2">{BATCH_KIND_LABELS[b.kind]}</td>
                <td className="px-3 py-2">
                  <BatchStateBadge state={b.state} />
                </td>
                <td className="px-3 py-2">
                  <BatchProgress counts={b.counts} />
                </td>
                <td className="px-3 py-2 text-xs text-slate-600">
                  {b.concurrency} at a time · pause above {b.failureThresholdPct}% failed
                </td>
                <td className="px-3 py-2 text-xs text-slate-600" title={dateTime(b.createdAt)}>
                  {relativeTime(b.createdAt)} by {b.createdBy?.replace(/^user:/, "") ?? "—"}
                </td>
              </tr>
            ))}
            {data?.length === 0 && (
              <tr>
                <td colSpan={6} className="px-3 py-6 text-center text-slate-500">
                  No batches yet. Select machines on the Machines page and choose Deploy, Reinstall, Release or Inspect.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}
