"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { MACHINE_STATES, type MachineState } from "@/lib/lifecycle";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner, Field } from "./ui";

type Form = { intervalS: string; jitterS: string; concurrency: string; failureThreshold: string; skipStates: MachineState[] };

/**
 * Power sync on the Settings page: how often BMCs are asked for their power state, which lifecycle states are
 * left alone, the last sweep's figures, how status reads reached the BMCs, and "Sync now".
 */
export function PowerSyncSettings() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { data } = useQuery(trpc.oob.syncSettings.queryOptions());
  const { data: status } = useQuery(trpc.oob.syncStatus.queryOptions(undefined, { refetchInterval: 5000 }));
  const [form, setForm] = useState<Form | null>(null);
  const [saved, setSaved] = useState(false);
  if (data && !form) setForm({ intervalS: String(data.intervalS), jitterS: String(data.jitterS), concurrency: String(data.concurrency), failureThreshold: String(data.failureThreshold), skipStates: data.skipStates });
  const save = useMutation(trpc.oob.updateSyncSettings.mutationOptions({ onSuccess: () => (setSaved(true), void qc.invalidateQueries({ queryKey: trpc.oob.syncSettings.queryKey() })) }));
  const now = useMutation(trpc.oob.syncNow.mutationOptions({ onSuccess: () => void qc.invalidateQueries({ queryKey: trpc.oob.syncStatus.queryKey() }) }));
  if (!form) return null;
  const errors: Record<string, string> = {};
  for (const d of save.error ? errorInfo(save.error).details : []) if (d.field) errors[d.field] ??= d.message;
  const num = (f: Exclude<keyof Form, "skipStates">) => ({
    value: form[f],
    type: "number",
    "aria-invalid": !!errors[f],
    onChange: (e: { target: { value: string } }) => (setForm({ ...form, [f]: e.target.value }), setSaved(false)),
  });
  const last = now.data ?? status?.last;
  return (
    <form
      className="card mt-4 grid grid-cols-1 gap-3 p-4 md:grid-cols-4"
      aria-label="Power sync"
      data-testid="power-sync"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate({ intervalS: Number(form.intervalS), jitterS: Number(form.jitterS), concurrency: Number(form.concurrency), failureThreshold: Number(form.failureThreshold), skipStates: form.skipStates });
      }}
    >
      <h2 className="font-semibold md:col-span-4">Power sync</h2>
      <Field label="Interval (s)" error={errors.intervalS}><input className="input" {...num("intervalS")} /></Field>
      <Field label="Jitter (± s)" error={errors.jitterS}><input className="input" {...num("jitterS")} /></Field>
      <Field label="BMCs at once" error={errors.concurrency}><input className="input" {...num("concurrency")} /></Field>
      <Field label="Failures until unreachable" error={errors.failureThreshold}><input className="input" {...num("failureThreshold")} /></Field>
      <fieldset className="md:col-span-4">
        <legend className="text-sm font-medium">Do not sync machines in these states</legend>
        <div className="mt-1 flex flex-wrap gap-3 text-sm">
          {MACHINE_STATES.map((st) => (
            <label key={st} className="flex items-center gap-1">
              <input
                type="checkbox"
                checked={form.skipStates.includes(st)}
                onChange={(e) => (setForm({ ...form, skipStates: e.target.checked ? [...form.skipStates, st] : form.skipStates.filter((x) => x !== st) }), setSaved(false))}
              />
              {st.replace("_", " ")}
            </label>
          ))}
        </div>
      </fieldset>
      <div className="flex flex-wrap items-center gap-3 md:col-span-4">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>Save power sync</button>
        <button type="button" className="btn" disabled={now.isPending} onClick={() => now.mutate()}>{now.isPending ? "Syncing…" : "Sync now"}</button>
        {saved && <span role="status" className="text-sm text-emerald-700">Saved, applied now</span>}
        <ErrorBanner message={(save.error && !errorInfo(save.error).details.length ? errorInfo(save.error).message : null) ?? (now.error ? errorInfo(now.error).message : null)} />
      </div>
      <div className="text-sm text-slate-500 md:col-span-4" data-testid="power-sync-last">
        {last ? (
          <>
            Last sweep {new Date(last.at).toLocaleTimeString()}: {last.machines} {last.machines === 1 ? "machine" : "machines"}, {last.ok} answered, {last.changed} changed, {last.failed} failed ·{" "}
            {last.durationMs.toFixed(0)} ms, {last.cpuMs.toFixed(1)} ms CPU, {last.written} {last.written === 1 ? "row" : "rows"} written
          </>
        ) : (
          "No sweep yet in this process."
        )}
        {status && (
          <div>
            Status reads: {status.probe.native} by Rackhand&apos;s RMCP+ probe, {status.probe.fallback} retried with ipmitool, {status.probe.ipmitool} by ipmitool only ({status.statusProbe} mode)
          </div>
        )}
      </div>
    </form>
  );
}
