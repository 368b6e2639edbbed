"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { errorInfo, useTRPC } from "./trpc";
import { Dialog, ErrorBanner, Field } from "./ui";

/** Change your own password: the current one is required; your other sessions are signed out. */
export function ChangeOwnPassword() {
  const trpc = useTRPC();
  const [form, setForm] = useState({ currentPassword: "", newPassword: "", repeat: "" });
  const [mismatch, setMismatch] = useState(false);
  const change = useMutation(trpc.auth.changePassword.mutationOptions({ onSuccess: () => setForm({ currentPassword: "", newPassword: "", repeat: "" }) }));
  const details = change.error ? errorInfo(change.error).details : [];
  const fieldErr = (f: string) => details.find((d) => d.field === f)?.message;
  function submit(e: FormEvent) {
    e.preventDefault();
    setMismatch(form.newPassword !== form.repeat);
    if (form.newPassword !== form.repeat) return;
    change.mutate({ currentPassword: form.currentPassword, newPassword: form.newPassword });
  }
  return (
    <form id="password" onSubmit={submit} className="card mb-4 grid grid-cols-1 items-end gap-3 p-4 md:grid-cols-4" aria-label="Change your password">
      <h2 className="text-sm font-semibold md:col-span-4">Your password</h2>
      <Field label="Current password" error={fieldErr("currentPassword")}>
        <input className="input" type="password" autoComplete="current-password" value={form.currentPassword} onChange={(e) => setForm({ ...form, currentPassword: e.target.value })} />
      </Field>
      <Field label="New password" error={fieldErr("newPassword")} hint="At least 10 characters">
        <input className="input" type="password" autoComplete="new-password" value={form.newPassword} onChange={(e) => setForm({ ...form, newPassword: e.target.value })} />
      </Field>
      <Field label="Repeat new password" error={mismatch ? "The two new passwords differ" : undefined}>
        <input className="input" type="password" autoComplete="new-password" value={form.repeat} onChange={(e) => setForm({ ...form, repeat: e.target.value })} />
      </Field>
      <button type="submit" className="btn btn-primary justify-center" disabled={change.isPending || !form.currentPassword || !form.newPassword}>
        Change password
      </button>
      <div className="md:col-span-4">
        <ErrorBanner message={change.error && !details.length ? errorInfo(change.error).message : null} />
        {change.data && (
          <p role="status" className="text-sm text-emerald-800">
            Password changed. {change.data.endedSessions === 1 ? "1 other session was" : `${change.data.endedSessions} other sessions were`} signed out.
          </p>
        )}
      </div>
    </form>
  );
}

/** An admin sets a new password for another user; all of that user's sessions end (server side). */
export function ResetPasswordButton({ user }: { user: { id: number; name: string } }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState("");
  const reset = useMutation(
    trpc.users.update.mutationOptions({
      onSuccess: () => {
        setOpen(false);
        setPassword("");
        void qc.invalidateQueries({ queryKey: trpc.users.pathKey() });
      },
    }),
  );
  const err = reset.error ? errorInfo(reset.error) : null;
  return (
    <>
      <button type="button" className="btn btn-sm ml-2" onClick={() => (reset.reset(), setOpen(true))}>
        Reset password
      </button>
      {reset.isSuccess && !open && (
        <span role="status" className="ml-2 text-xs text-emerald-800">
          password reset; signed out
        </span>
      )}
      <Dialog open={open} onClose={() => setOpen(false)} title={`Reset the password of ${user.name}`}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            reset.mutate({ id: user.id, password });
          }}
          className="space-y-3"
        >
          <p className="text-sm text-slate-600">All of {user.name}&apos;s sessions and live connections end; they sign in again with the new password.</p>
          <Field label="New password" error={err?.details.find((d) => d.field === "password")?.message} hint="At least 10 characters">
            <input className="input" type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
          </Field>
          <ErrorBanner message={err && !err.details.length ? err.message : null} />
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={() => setOpen(false)}>
              Cancel
            </button>
            <button type="submit" className="btn btn-primary" disabled={reset.isPending || password.length === 0}>
              Reset password
            </button>
          </div>
        </form>
      </Dialog>
    </>
  );
}
