"use client";
import { TypedCount } from "./bulk-results";
import { useMutation } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { BATCH_KIND_LABELS, CONFIRM_BATCH_KINDS, DESTRUCTIVE_BATCH_KINDS, POWER_BATCH_KINDS, type BatchKind } from "@/lib/batches";
import { plural } from "@/lib/format";
import type { Selection } from "@/lib/schemas";
import { errorInfo, useTRPC } from "./trpc";
import { Field, ErrorBanner } from "./ui";

/**
 * The form that starts a batch over the table selection: concurrency, failure threshold, and for kinds that erase
 * disks or cut power the number of machines typed by the operator (checked again by the server against the selection).
 */
export function BatchStartForm({ kind, selection, count, onCancel }: { kind: BatchKind; selection: Selection; count: number; onCancel: () => void }) {
  const trpc = useTRPC();
  const router = useRouter();
  const [concurrency, setConcurrency] = useState("10");
  const [threshold, setThreshold] = useState("20");
  const [typed, setTyped] = useState("");
  const create = useMutation(trpc.batches.create.mutationOptions({ onSuccess: (r) => router.push(`/batches/${r.batchId}`) }));
  const destructive = DESTRUCTIVE_BATCH_KINDS.includes(kind);
  const power = POWER_BATCH_KINDS.includes(kind);
  const confirm = CONFIRM_BATCH_KINDS.includes(kind);
  const c = Number(concurrency);
  const t = Number(threshold);
  const valid = Number.isInteger(c) && c >= 1 && c <= 500 && Number.isInteger(t) && t >= 0 && t <= 100;
  const confirmed = !confirm || typed.trim() === String(count);
  const error = create.error ? errorInfo(create.error) : null;
  return (
    <form
      className="space-y-3"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid && confirmed) create.mutate({ selection, kind, concurrency: c, failureThresholdPct: t, ...(confirm && { confirmCount: Number(typed.trim()) }) });
      }}
    >
      <p className="text-sm text-slate-700">
        Starts a batch: one job per machine, at most <b>{Number.isInteger(c) ? c : "N"}</b> at a time. When more than the threshold of finished jobs
        fail (judged after 3 have finished), the batch pauses and alerts.{" "}
        {power
          ? "Machines without a BMC or busy with another job are skipped and listed; the machines' lifecycle states do not change."
          : "Machines whose state does not allow it are skipped and listed."}
        {destructive && <b className="text-red-800"> This erases the disks of the machines.</b>}
        {confirm && power && <b className="text-red-800"> This interrupts whatever runs on the machines.</b>}
      </p>
      <div className="grid grid-cols-2 gap-3">
        <Field label="Concurrency" hint="1–500 machines at a time">
          <input className="input" type="number" min={1} max={500} value={concurrency} onChange={(e) => setConcurrency(e.target.value)} />
        </Field>
        <Field label="Pause above (% failed)" hint="0 = at the first failure; 100 = never">
          <input className="input" type="number" min={0} max={100} value={threshold} onChange={(e) => setThreshold(e.target.value)} />
        </Field>
      </div>
      {confirm && <TypedCount count={count} value={typed} onChange={setTyped} />}
      <ErrorBanner message={error?.message ?? null} />
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className={`btn ${confirm ? "btn-danger" : "btn-primary"}`} disabled={create.isPending || !valid || !confirmed}>
          {BATCH_KIND_LABELS[kind]} {plural(count, "machine")}
        </button>
      </div>
    </form>
  );
}
