"use client";
import { useMutation } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { BATCH_KIND_LABELS, CONFIRM_BATCH_KINDS, DESTRUCTIVE_BATCH_KINDS, POWER_BATCH_KINDS, type BatchKind } from "@/lib/batches";
import type { Selection } from "@/lib/schemas";
import { PlanConfirm } from "./plan-preview";
import { useTRPC } from "./trpc";
import { Field } from "./ui";

/**
 * The form that starts a batch over the table selection: concurrency, failure threshold, the server's plan (who acts,
 * who is skipped and why, what changes), and for kinds that erase disks or cut power the number of machines that
 * will act, typed by the operator. Confirming starts exactly that plan (the server refuses a stale one).
 */
export function BatchStartForm({
  kind,
  selection,
  osProfileId,
  onCancel,
  children,
}: {
  kind: BatchKind;
  selection: Selection;
  /** Deploy and reinstall: the OS profile chosen for the selection (undefined: each machine's own). */
  osProfileId?: number;
  onCancel: () => void;
  children?: React.ReactNode;
}) {
  const trpc = useTRPC();
  const router = useRouter();
  const [concurrency, setConcurrency] = useState("10");
  const [threshold, setThreshold] = useState("20");
  const create = useMutation(trpc.batches.create.mutationOptions({ onSuccess: (r) => router.push(`/batches/${r.batchId}`) }));
  const destructive = DESTRUCTIVE_BATCH_KINDS.includes(kind);
  const power = POWER_BATCH_KINDS.includes(kind);
  const confirm = CONFIRM_BATCH_KINDS.includes(kind);
  const c = Number(concurrency);
  const t = Number(threshold);
  const valid = Number.isInteger(c) && c >= 1 && c <= 500 && Number.isInteger(t) && t >= 0 && t <= 100;
  return (
    <PlanConfirm
      selection={selection}
      op={{ type: "batch", kind, ...(osProfileId !== undefined && { osProfileId }) }}
      typed={confirm}
      danger={confirm}
      confirmLabel={BATCH_KIND_LABELS[kind]}
      canConfirm={valid}
      pending={create.isPending}
      error={create.error}
      onCancel={onCancel}
      onConfirm={(planId, acting) =>
        create.mutate({
          selection,
          kind,
          concurrency: c,
          failureThresholdPct: t,
          planId,
          ...(osProfileId !== undefined && { osProfileId }),
          ...(confirm && { confirmCount: acting }),
        })
      }
    >
      {children}
      <p className="text-sm text-slate-700">
        Starts a batch: one job per acting machine, at most <b>{Number.isInteger(c) ? c : "N"}</b> at a time. When more than the threshold of finished
        jobs fail (judged after 3 have finished), the batch pauses and alerts.
        {power && " The machines' lifecycle states do not change."}
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
    </PlanConfirm>
  );
}
