"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState } from "react";
import { useConfirm } from "@/components/dialog";
import { useSession } from "@/components/session";
import { SubnetForm } from "@/components/subnet-form";
import { errorInfo, useTRPC } from "@/components/trpc";
import { Dialog, ErrorBanner, PageHeader } from "@/components/ui";

/** "18446744073709551359" → "1.8e19" for IPv6 counts; plain digits otherwise. */
export function bigCount(s: string): string {
  return s.length > 9 ? `${s[0]}.${s[1]}e${s.length - 1}` : Number(s).toLocaleString("en");
}

export default function SubnetsPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const ask = useConfirm();
  const { data, isLoading, error } = useQuery(trpc.subnets.list.queryOptions());
  const [creating, setCreating] = useState(false);
  const del = useMutation(trpc.subnets.delete.mutationOptions({ onSuccess: () => qc.invalidateQueries({ queryKey: trpc.subnets.pathKey() }) }));
  const admin = can("admin");
  return (
    <div>
      <PageHeader
        title="Subnets"
        subtitle={data ? `${data.length} subnets · ${data.reduce((a, s) => a + s.allocated, 0).toLocaleString("en")} addresses allocated` : undefined}
        actions={
          <button className="btn btn-primary" disabled={!admin} title={admin ? undefined : "Admins manage subnets"} onClick={() => setCreating(true)}>
            New subnet
          </button>
        }
      />
      <ErrorBanner message={error ? errorInfo(error).message : del.error ? errorInfo(del.error).message : null} />
      {isLoading && <p className="text-slate-500">Loading subnets…</p>}
      {data && data.length === 0 && <div className="card p-8 text-center text-slate-600">No subnets yet. Create one to allocate machine addresses from it.</div>}
      {data && data.length > 0 && (
        <div className="card overflow-x-auto">
          <table className="w-full text-sm">
            <thead className="bg-slate-50 text-left text-xs uppercase text-slate-600">
              <tr>
                <th className="px-3 py-2">Name</th>
                <th className="px-3 py-2">CIDR</th>
                <th className="px-3 py-2">VLAN</th>
                <th className="px-3 py-2">Gateway</th>
                <th className="px-3 py-2">Dynamic range</th>
                <th className="px-3 py-2 text-right">Allocated</th>
                <th className="px-3 py-2 text-right">Free</th>
                <th className="px-3 py-2" />
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {data.map((s) => (
                <tr key={s.id}>
                  <td className="px-3 py-2">
                    <Link className="text-blue-700 hover:underline" href={`/subnets/${s.id}`}>
                      {s.name}
                    </Link>
                    {s.provisioning && <span className="ml-2 rounded bg-blue-50 px-1.5 py-0.5 text-xs text-blue-800 ring-1 ring-blue-200">provisioning</span>}
                  </td>
                  <td className="px-3 py-2 font-mono text-xs">{s.cidr}</td>
                  <td className="px-3 py-2">{s.vlanId ?? "—"}</td>
                  <td className="px-3 py-2 font-mono text-xs">{s.gateway ?? "—"}</td>
                  <td className="px-3 py-2 font-mono text-xs">{s.dynamic ? `${s.dynamic.start} – ${s.dynamic.end}` : "—"}</td>
                  <td className="px-3 py-2 text-right tabular-nums">{s.allocated.toLocaleString("en")}</td>
                  <td className="px-3 py-2 text-right tabular-nums" title={s.free}>
                    {bigCount(s.free)}
                  </td>
                  <td className="px-3 py-2 text-right">
                    {admin && (
                      <button
                        className="text-xs text-red-700 hover:underline disabled:text-slate-500 disabled:no-underline"
                        disabled={s.allocated > 0}
                        title={s.allocated > 0 ? "Only subnets without allocated addresses can be deleted" : undefined}
                        onClick={() =>
                          void ask({ title: `Delete subnet ${s.name}?`, message: "This cannot be undone.", confirmLabel: "Delete", danger: true }).then((ok) => ok !== null && del.mutate({ id: s.id }))
                        }
                      >
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog open={creating} onClose={() => setCreating(false)} title="New subnet">
        <SubnetForm onDone={() => setCreating(false)} />
      </Dialog>
    </div>
  );
}
