"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { relativeTime } from "@/lib/format";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ErrorBanner, Field } from "@/components/ui";

/**
 * API tokens for scripts and the `rackhand` CLI: create (the secret is shown once), list, revoke.
 * Admins see and may revoke everyone's tokens.
 */
export function ApiTokens({ admin }: { admin: boolean }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { data: tokens, error } = useQuery(trpc.tokens.list.queryOptions(admin ? { all: true } : undefined));
  const invalidate = () => void qc.invalidateQueries({ queryKey: trpc.tokens.pathKey() });
  const [form, setForm] = useState<{ name: string; scope: "read" | "role"; expiresInDays: number }>({ name: "", scope: "read", expiresInDays: 90 });
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const create = useMutation(
    trpc.tokens.create.mutationOptions({
      onSuccess: (r) => {
        setSecret({ name: r.info.name, token: r.token });
        setForm({ ...form, name: "" });
        invalidate();
      },
    }),
  );
  const revoke = useMutation(trpc.tokens.revoke.mutationOptions({ onSuccess: invalidate }));
  const details = create.error ? errorInfo(create.error).details : [];
  const fieldErr = (f: string) => details.find((d) => d.field === f)?.message;
  // eslint-disable-next-line react-hooks/purity -- expiry is judged against the wall time of this render
  const now = Date.now();

  function submit(e: FormEvent) {
    e.preventDefault();
    setSecret(null);
    create.mutate(form);
  }
  return (
    <section className="mt-8" aria-label="API tokens">
      <h2 className="mb-1 text-lg font-semibold">API tokens</h2>
      <p className="mb-3 text-sm text-slate-600">
        For scripts and the <code>rackhand</code> CLI: send <code>Authorization: Bearer &lt;token&gt;</code>. A read-only token never changes
        anything; a role token acts with your current role.
      </p>
      <ErrorBanner message={error ? errorInfo(error).message : revoke.error ? errorInfo(revoke.error).message : null} />
      {secret && (
        <div className="card mb-3 border-emerald-300 bg-emerald-50 p-3 text-sm" role="status" data-testid="new-token">
          <div className="mb-1 font-medium">Token “{secret.name}” created. Copy it now: it is not shown again.</div>
          <code className="block break-all rounded bg-white px-2 py-1 font-mono text-xs">{secret.token}</code>
        </div>
      )}
      <div className="card mb-3 overflow-hidden">
        <table className="w-full text-sm">
          <thead className="bg-slate-50 text-left text-xs uppercase text-slate-600">
            <tr>
              {admin && <th className="px-3 py-2">User</th>}
              <th className="px-3 py-2">Name</th>
              <th className="px-3 py-2">Token</th>
              <th className="px-3 py-2">Scope</th>
              <th className="px-3 py-2">Expires</th>
              <th className="px-3 py-2">Last used</th>
              <th className="px-3 py-2" />
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {tokens?.length === 0 && (
              <tr>
                <td className="px-3 py-2 text-slate-500" colSpan={admin ? 7 : 6}>
                  No tokens yet.
                </td>
              </tr>
            )}
            {tokens?.map((t) => {
              const dead = t.revokedAt !== null || t.expiresAt <= now;
              return (
                <tr key={t.id} className={dead ? "text-slate-500" : undefined}>
                  {admin && <td className="px-3 py-1.5">{t.userName}</td>}
                  <td className="px-3 py-1.5 font-medium">{t.name}</td>
                  <td className="px-3 py-1.5 font-mono text-xs">{t.prefix}…</td>
                  <td className="px-3 py-1.5">{t.scope === "read" ? "read-only" : "role"}</td>
                  <td className="px-3 py-1.5">{new Date(t.expiresAt).toISOString().slice(0, 10)}</td>
                  <td className="px-3 py-1.5">{relativeTime(t.lastUsedAt)}</td>
                  <td className="px-3 py-1.5 text-right">
                    {t.revokedAt !== null ? (
                      <span className="text-xs">revoked</span>
                    ) : t.expiresAt <= now ? (
                      <span className="text-xs">expired</span>
                    ) : (
                      <button className="btn btn-sm" onClick={() => revoke.mutate({ id: t.id })} aria-label={`Revoke token ${t.name}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <form onSubmit={submit} className="card grid grid-cols-1 items-end gap-3 p-4 md:grid-cols-4" aria-label="New API token">
        <Field label="Token name" error={fieldErr("name")}>
          <input className="input" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </Field>
        <Field label="Scope">
          <select className="input" value={form.scope} onChange={(e) => setForm({ ...form, scope: e.target.value as "read" | "role" })}>
            <option value="read">read-only</option>
            <option value="role">my role</option>
          </select>
        </Field>
        <Field label="Expires in (days)" error={fieldErr("expiresInDays")}>
          <input
            className="input"
            type="number"
            min={1}
            max={366}
            value={form.expiresInDays}
            onChange={(e) => setForm({ ...form, expiresInDays: Number(e.target.value) })}
          />
        </Field>
        <button type="submit" className="btn btn-primary justify-center" disabled={create.isPending}>
          Create token
        </button>
        <div className="md:col-span-4">
          <ErrorBanner message={create.error && !details.length ? errorInfo(create.error).message : null} />
        </div>
      </form>
    </section>
  );
}
