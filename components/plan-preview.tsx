"use client";
import { useMutation, useQuery } from "@tanstack/react-query";
import { useEffect, useState, type ReactNode } from "react";
import { plural } from "@/lib/format";
import { STALE_PLAN_MESSAGE, type BulkOp, type BulkPlan } from "@/lib/plan";
import type { Selection } from "@/lib/schemas";
import { TypedCount, typedCountMatches } from "./bulk-results";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner } from "./ui";

/** Rows of the plan shown in the dialog (the totals cover the whole selection). */
const SHOWN_ROWS = 500;

/** Whether an execution was refused because the plan changed (the dialog then plans again). */
export const isStalePlan = (err: unknown) => !!err && errorInfo(err).message === STALE_PLAN_MESSAGE;

/** The OS profile picker of the Deploy, Reinstall and Set OS profile dialogs; "" = each machine's own (or none). */
export function ProfileSelect({ value, onChange, ownLabel }: { value: string; onChange: (v: string) => void; ownLabel: string }) {
  const trpc = useTRPC();
  const { data: profiles } = useQuery(trpc.osProfiles.list.queryOptions());
  return (
    <label className="block text-sm">
      OS profile
      <select className="input mt-1" aria-label="OS profile" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">{ownLabel}</option>
        {profiles?.map((p) => (
          <option key={p.id} value={String(p.id)}>
            {p.name}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The server's plan for `op` over `selection`, made again whenever either changes (and on demand). */
function usePlan(selection: Selection, op: BulkOp) {
  const trpc = useTRPC();
  const plan = useMutation(trpc.machines.plan.mutationOptions());
  const key = JSON.stringify({ selection, op });
  const { mutate } = plan;
  const [round, setRound] = useState(0);
  useEffect(() => {
    mutate(JSON.parse(key) as { selection: Selection; op: BulkOp });
  }, [key, round, mutate]);
  return { plan: plan.data ?? null, error: plan.error, pending: plan.isPending, replan: () => setRound((r) => r + 1) };
}

/** What the plan will do: totals, then one row per machine (acting first), with the reason of each skip. */
export function PlanView({ plan }: { plan: BulkPlan }) {
  return (
    <div className="space-y-2 text-sm" data-testid="plan">
      <p className="font-semibold" data-testid="plan-summary">
        {plan.acting.toLocaleString("en-US")} of {plural(plan.total, "machine")} will act; {plan.skipped.toLocaleString("en-US")} skipped.
      </p>
      <div className="grid gap-2 sm:grid-cols-2">
        {(plan.transitions.length > 0 || plan.changes.length > 0) && (
          <ul className="list-disc pl-5 text-slate-700" aria-label="What changes">
            {plan.transitions.map((t) => (
              <li key={t.label}>
                {t.label}: {t.count.toLocaleString("en-US")}
              </li>
            ))}
            {plan.changes.map((c) => (
              <li key={c.label}>
                {c.label}: {c.count.toLocaleString("en-US")}
              </li>
            ))}
          </ul>
        )}
        {plan.skipTotals.length > 0 && (
          <ul className="list-disc pl-5 text-amber-800" aria-label="Skipped">
            {plan.skipTotals.map((s) => (
              <li key={s.reason}>
                Skipped, {s.label}: {s.count.toLocaleString("en-US")}
              </li>
            ))}
          </ul>
        )}
      </div>
      <div className="max-h-64 overflow-auto rounded border border-slate-200">
        <table className="w-full text-xs" aria-label="Plan per machine">
          <thead className="sticky top-0 bg-slate-50 text-left">
            <tr>
              <th className="px-2 py-1">Machine</th>
              <th className="px-2 py-1">Plan</th>
              <th className="px-2 py-1">What happens</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {plan.rows.slice(0, SHOWN_ROWS).map((r) => (
              <tr key={r.id} data-testid={`plan-row-${r.name}`}>
                <td className="px-2 py-1 font-medium">{r.name}</td>
                <td className={`px-2 py-1 ${r.act ? "text-emerald-700" : "text-amber-800"}`}>{r.act ? "act" : "skip"}</td>
                <td className="px-2 py-1">
                  {r.detail}
                  {r.act && r.changes.length > 0 && r.changes[0] !== r.detail && <span className="block text-slate-500">{r.changes.join(" · ")}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {(plan.rowsTruncated || plan.rows.length > SHOWN_ROWS) && (
          <p className="px-2 py-1 text-xs text-slate-500">
            Showing {Math.min(SHOWN_ROWS, plan.rows.length).toLocaleString("en-US")} of {plural(plan.total, "machine")}; the totals above cover all.
          </p>
        )}
      </div>
    </div>
  );
}

/**
 * The confirmation of every bulk action: the server's plan, the number that will act typed by the operator (when
 * `typed`), and `onConfirm(planId, acting)` to execute exactly that plan. When the execution is refused as stale
 * (`error`), the plan is made again and the operator confirms the new one.
 */
export function PlanConfirm({
  selection,
  op,
  typed,
  confirmLabel,
  danger,
  onConfirm,
  onCancel,
  pending,
  error,
  canConfirm = true,
  children,
}: {
  selection: Selection;
  op: BulkOp;
  typed: boolean;
  confirmLabel: string;
  danger: boolean;
  onConfirm: (planId: string, acting: number) => void;
  onCancel: () => void;
  pending: boolean;
  error: unknown;
  /** Other fields of the form are valid. */
  canConfirm?: boolean;
  /** Fields above the plan (OS profile, batch settings). */
  children?: ReactNode;
}) {
  const { plan, error: planError, pending: planning, replan } = usePlan(selection, op);
  const [text, setText] = useState("");
  const [staleSeen, setStaleSeen] = useState<unknown>(null);
  // A stale refusal: plan again once per refusal (adjusted while rendering, not in an effect).
  if (isStalePlan(error) && staleSeen !== error) {
    setStaleSeen(error);
    setText("");
    replan();
  }
  const acting = plan?.acting ?? 0;
  const ready = !!plan && !planning && acting > 0 && canConfirm && (!typed || typedCountMatches(text, acting));
  return (
    <form
      className="space-y-3"
      onSubmit={(e) => {
        e.preventDefault();
        if (ready && plan) onConfirm(plan.planId, acting);
      }}
    >
      {children}
      {isStalePlan(error) && (
        <p role="alert" className="rounded border border-amber-300 bg-amber-50 p-2 text-sm text-amber-900" data-testid="plan-stale">
          {STALE_PLAN_MESSAGE}.
        </p>
      )}
      <ErrorBanner message={planError ? errorInfo(planError).message : error && !isStalePlan(error) ? errorInfo(error).message : null} />
      {planning && !plan && <p className="text-sm text-slate-500">Planning…</p>}
      {plan && <PlanView plan={plan} />}
      {plan && acting === 0 && <p className="text-sm font-semibold text-amber-800">No machine of the selection would act: nothing to confirm.</p>}
      {plan && typed && acting > 0 && <TypedCount count={acting} value={text} onChange={setText} />}
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className={`btn ${danger ? "btn-danger" : "btn-primary"}`} disabled={pending || !ready}>
          {confirmLabel} {plural(acting, "machine")}
        </button>
      </div>
    </form>
  );
}
