"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { relativeTime } from "@/lib/format";
import { ROLES, type Role } from "@/lib/schemas";
import { useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ApiTokens } from "@/components/api-tokens";
import { ChangeOwnPassword, ResetPasswordButton } from "@/components/account-password";
import { ErrorBanner, Field, PageHeader } from "@/components/ui";

export default function UsersPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const { data: users, error } = useQuery(trpc.users.list.queryOptions(undefined, { enabled: can("admin") }));
  const invalidate = () => void qc.invalidateQueries({ queryKey: trpc.users.pathKey() });
  const create = useMutation(trpc.users.create.mutationOptions({ onSuccess: () => (invalidate(), setForm({ name: "", role: "viewer", password: "" })) }));
  const update = useMutation(trpc.users.update.mutationOptions({ onSuccess: invalidate }));
  const [form, setForm] = useState<{ name: string; role: Role; password: string }>({ name: "", role: "viewer", password: "" });

  if (!can("admin"))
    return (
      <div className="max-w-4xl">
        <PageHeader title="Account and API tokens" subtitle="Only admins manage users. Here you change your password and manage your own API tokens." />
        <ChangeOwnPassword />
        <ApiTokens admin={false} />
      </div>
    );
  const details = create.error ? errorInfo(create.error).details : [];
  const fieldErr = (f: string) => details.find((d) => d.field === f)?.message;

  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate(form);
  }
  return (
    <div className="max-w-4xl">
      <PageHeader title="Users" subtitle="Admins manage users; operators act on machines; viewers read everything and change nothing." />
      <ChangeOwnPassword />
      <ErrorBanner message={error ? errorInfo(error).message : update.error ? errorInfo(update.error).message : null} />
      <div className="card mb-4 overflow-hidden">
        <table className="w-full text-sm">
          <thead className="bg-slate-50 text-left text-xs uppercase text-slate-600">
            <tr>
              <th className="px-3 py-2">Name</th>
              <th className="px-3 py-2">Role</th>
              <th className="px-3 py-2">Last sign-in</th>
              <th className="px-3 py-2">Status</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {users?.map((u) => (
              <tr key={u.id}>
                <td className="px-3 py-1.5 font-medium">{u.name}</td>
                <td className="px-3 py-1.5">
                  <select
                    className="input w-32 py-1"
                    aria-label={`Role of ${u.name}`}
                    value={u.role}
                    onChange={(e) => update.mutate({ id: u.id, role: e.target.value as Role })}
                  >
                    {ROLES.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                </td>
                <td className="px-3 py-1.5 text-slate-600">{relativeTime(u.lastLoginAt)}</td>
                <td className="px-3 py-1.5">
                  <button className="btn btn-sm" onClick={() => update.mutate({ id: u.id, disabled: !u.disabled })}>
                    {u.disabled ? "Enable" : "Disable"}
                  </button>
                  {u.disabled && <span className="ml-2 text-xs text-red-700">disabled</span>}
                  <ResetPasswordButton user={u} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form onSubmit={submit} className="card grid grid-cols-1 items-end gap-3 p-4 md:grid-cols-4" aria-label="New user">
        <Field label="New user name" error={fieldErr("name")}>
          <input className="input" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </Field>
        <Field label="Role">
          <select className="input" value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </Field>
        <Field label="Initial password" error={fieldErr("password")}>
          <input className="input" type="password" autoComplete="new-password" value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
        </Field>
        <button type="submit" className="btn btn-primary justify-center" disabled={create.isPending}>
          Create user
        </button>
        <div className="md:col-span-4">
          <ErrorBanner message={create.error && !details.length ? errorInfo(create.error).message : null} />
        </div>
      </form>
      <ApiTokens admin />
    </div>
  );
}
