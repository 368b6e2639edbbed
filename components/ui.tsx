"use client";
import type { ReactNode } from "react";
import { STATE_LABELS, type MachineState } from "@/lib/lifecycle";
import type { PowerState } from "@/lib/schemas";
import { POWER_COLORS, STATE_COLORS } from "./state-style";

export function StateBadge({ state }: { state: MachineState }) {
  return (
    <span
      className={`inline-flex items-center whitespace-nowrap rounded px-1.5 py-0.5 text-xs font-medium ring-1 ring-inset ${STATE_COLORS[state].badge}`}
      data-state={state}
    >
      {STATE_LABELS[state]}
    </span>
  );
}

/** The power badge; `pending`: a power action is under way ("powering on…") until the BMC confirms it. */
export function PowerDot({ power, withLabel = false, pending = null }: { power: PowerState; withLabel?: boolean; pending?: "on" | "off" | null }) {
  const label = pending ? `powering ${pending}…` : power;
  return (
    <span className="inline-flex items-center gap-1.5" title={pending ? `Power ${power}, ${label}` : `Power ${power}`} data-power-pending={pending ?? undefined}>
      <span className={`inline-block h-2 w-2 rounded-full ${POWER_COLORS[pending ?? power]} ${pending ? "animate-pulse" : ""}`} aria-hidden />
      {withLabel ? <span className="text-xs text-slate-700">{label}</span> : <span className="sr-only">power {label}</span>}
    </span>
  );
}

export function Field({
  label,
  error,
  children,
  hint,
}: {
  label: string;
  error?: string;
  children: ReactNode;
  hint?: string;
}) {
  return (
    <label className="block">
      <span className="label">{label}</span>
      {children}
      {error ? <span className="field-error" role="alert">{error}</span> : hint ? <span className="mt-1 block text-xs text-slate-500">{hint}</span> : null}
    </label>
  );
}

export function ErrorBanner({ message }: { message?: string | null }) {
  if (!message) return null;
  return (
    <div role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {message}
    </div>
  );
}

/** The modal dialog lives in ./dialog (with ConfirmDialog and useConfirm); re-exported for existing imports. */
export { Dialog } from "./dialog";

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-end justify-between gap-3">
      <div>
        <h1 className="text-xl font-semibold tracking-tight">{title}</h1>
        {subtitle && <p className="mt-0.5 text-sm text-slate-600">{subtitle}</p>}
      </div>
      {actions && <div className="flex flex-wrap items-center gap-2">{actions}</div>}
    </div>
  );
}
