"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner, Field } from "./ui";

/** Admin settings of batch alerts: the webhook URL (JSON POST when a batch pauses) and the public dashboard URL. */
export function BatchAlertSettings() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { data } = useQuery(trpc.batches.settings.queryOptions());
  const [form, setForm] = useState<{ webhookUrl: string; publicUrl: string } | null>(null);
  const [saved, setSaved] = useState(false);
  // The form starts from the saved settings once they arrive (set while rendering, not in an effect).
  if (data && !form) setForm({ webhookUrl: data.webhookUrl ?? "", publicUrl: data.publicUrl ?? "" });
  const save = useMutation(
    trpc.batches.saveSettings.mutationOptions({ onSuccess: () => (setSaved(true), void qc.invalidateQueries({ queryKey: trpc.batches.settings.queryKey() })) }),
  );
  if (!form) return null;
  const errors: Record<string, string> = {};
  for (const d of save.error ? errorInfo(save.error).details : []) if (d.field) errors[d.field] ??= d.message;
  const bind = (f: "webhookUrl" | "publicUrl") => ({
    value: form[f],
    "aria-invalid": !!errors[f],
    onChange: (e: { target: { value: string } }) => (setForm({ ...form, [f]: e.target.value }), setSaved(false)),
  });
  return (
    <form
      className="card mt-4 grid grid-cols-1 gap-3 p-4 md:grid-cols-2"
      aria-label="Batch alerts"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate({ webhookUrl: form.webhookUrl.trim() || null, publicUrl: form.publicUrl.trim() || null });
      }}
    >
      <h2 className="font-semibold md:col-span-2">Batch alerts</h2>
      <Field label="Webhook URL" error={errors.webhookUrl} hint="POSTed as JSON when a batch passes its failure threshold; empty = none">
        <input className="input font-mono" placeholder="https://chat.example/hooks/…" {...bind("webhookUrl")} />
      </Field>
      <Field label="Dashboard URL" error={errors.publicUrl} hint="For the batch link in the webhook; empty = this server's address">
        <input className="input font-mono" placeholder="https://rackhand.example" {...bind("publicUrl")} />
      </Field>
      <div className="flex items-center gap-3 md:col-span-2">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          Save alert settings
        </button>
        {saved && <span role="status" className="text-sm text-emerald-700">Saved</span>}
        <ErrorBanner message={save.error && !errorInfo(save.error).details.length ? errorInfo(save.error).message : null} />
      </div>
    </form>
  );
}
