"use client";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { BATCH_KIND_LABELS, type BatchMachineDto } from "@/lib/batches";
import type { JobState } from "@/lib/jobs";
import { dateTime, plural, relativeTime } from "@/lib/format";
import { BatchControls, BatchProgress, BatchStateBadge } from "@/components/batch-controls";
import { useBatchRoom } from "@/components/live";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ErrorBanner, PageHeader, PowerDot, StateBadge } from "@/components/ui";

const JOB_STYLE: Record<JobState, string> = {
  queued: "text-slate-500",
  running: "text-blue-700",
  succeeded: "text-emerald-700",
  failed: "text-red-700",
  cancelled: "text-slate-500",
};

function stepText(m: BatchMachineDto): string {
  const s = m.currentStep;
  if (!s) return "—";
  const attempt = s.attempt > 1 || s.state === "pending" ? ` (attempt ${Math.max(s.attempt, 1)}/${s.maxAttempts}${s.state === "pending" && s.attempt > 0 ? ", retry pending" : ""})` : "";
  return `${s.name.replaceAll("_", " ")}${attempt}`;
}

/** While the live connection is down, an open batch is re-read this often (ms); connected, it is never polled. */
const OFFLINE_REFRESH_MS = 10_000;

/**
 * One batch: state, counts, controls, and a row per machine, kept current by live events: job and batch changes
 * (fleet room, useBatchInvalidation) and the step changes of its jobs (its `batch:<id>` room).
 */
export function BatchDetailView({ id }: { id: number }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { connected } = useBatchRoom(id, () => void qc.invalidateQueries({ queryKey: trpc.batches.get.queryKey({ id }) }));
  const { data: b, error } = useQuery(
    trpc.batches.get.queryOptions(
      { id },
      { refetchInterval: (q) => (!connected && q.state.data && !q.state.data.finishedAt ? OFFLINE_REFRESH_MS : false) },
    ),
  );
  if (!b) return <ErrorBanner message={error ? errorInfo(error).message : null} />;
  return (
    <div>
      <PageHeader
        title={`Batch ${b.id}: ${BATCH_KIND_LABELS[b.kind]}`}
        subtitle={
          <span title={dateTime(b.createdAt)}>
            {plural(b.counts.total, "machine")} · {b.concurrency} at a time · pauses above {b.failureThresholdPct}% failed · created {relativeTime(b.createdAt)} by{" "}
            {b.createdBy?.replace(/^user:/, "") ?? "—"}
            {b.finishedAt ? ` · ended ${relativeTime(b.finishedAt)}` : ""}
          </span>
        }
        actions={<BatchControls batch={b} size="" />}
      />
      <div className="card mb-4 flex flex-wrap items-center gap-6 p-4">
        <BatchStateBadge state={b.state} />
        <div className="flex-1">
          <BatchProgress counts={b.counts} />
        </div>
      </div>
      {b.alert && (
        <div className="card mb-4 p-3 text-sm" data-testid="batch-alert-info">
          <div>
            <b>Alert</b> {relativeTime(b.alert.at)}: {b.alert.message}
          </div>
          <div className="mt-1 text-xs text-slate-600" data-testid="webhook-status">
            Webhook:{" "}
            {b.alert.webhook.state === "none"
              ? "none configured"
              : b.alert.webhook.state === "failed"
                ? `failed after ${b.alert.webhook.attempts} attempts (${b.alert.webhook.error})`
                : b.alert.webhook.state}
          </div>
        </div>
      )}
      <div className="card overflow-x-auto">
        <table className="w-full text-sm" aria-label="Machines in this batch">
          <thead className="bg-slate-50 text-left text-xs uppercase tracking-wide text-slate-500">
            <tr>
              <th className="px-3 py-2">Machine</th>
              <th className="px-3 py-2">Machine state</th>
              <th className="px-3 py-2">Power</th>
              <th className="px-3 py-2">Job</th>
              <th className="px-3 py-2">Current step</th>
              <th className="px-3 py-2">Error</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {b.machines.map((m) => (
              <tr key={m.jobId} data-testid="batch-machine">
                <td className="px-3 py-1.5 font-medium">
                  <Link href={`/machines/${m.machineId}`} className="text-blue-700 hover:underline">
                    {m.machineName}
                  </Link>
                </td>
                <td className="px-3 py-1.5">
                  <StateBadge state={m.machineState} />
                </td>
                <td className="px-3 py-1.5 text-slate-700" data-testid="power-state">
                  <PowerDot power={m.powerState} withLabel />
                </td>
                <td className={`px-3 py-1.5 font-medium ${JOB_STYLE[m.jobState]}`} data-testid="job-state">
                  {m.jobState}
                </td>
                <td className="px-3 py-1.5 text-slate-700" data-testid="current-step">
                  {stepText(m)}
                </td>
                <td className="max-w-md px-3 py-1.5 text-red-700">{m.error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {b.skippedMachines.length > 0 && (
        <div className="card mt-4 p-3 text-sm">
          <h2 className="mb-2 font-semibold">Skipped when the batch was created ({b.skippedMachines.length})</h2>
          <ul className="space-y-0.5" data-testid="batch-skipped">
            {b.skippedMachines.map((s) => (
              <li key={s.machineId}>
                <Link href={`/machines/${s.machineId}`} className="font-medium text-blue-700 hover:underline">
                  {s.name}
                </Link>{" "}
                <span className="text-slate-600">{s.error}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
