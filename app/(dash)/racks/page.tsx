"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import type { RackSummary } from "@/lib/dto";
import { RackElevation, StateLegend } from "@/components/rack-elevation";
import { RackForm } from "@/components/rack-form";
import { NEEDS_OPERATOR, useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { useConfirm } from "@/components/dialog";
import { Dialog, ErrorBanner, PageHeader } from "@/components/ui";

export default function RacksPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const ask = useConfirm();
  const { data: racks, isLoading, error } = useQuery(trpc.racks.elevations.queryOptions());
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<RackSummary | null>(null);
  const [q, setQ] = useState("");
  const del = useMutation(trpc.racks.delete.mutationOptions({ onSuccess: () => qc.invalidateQueries({ queryKey: trpc.racks.pathKey() }) }));
  const shown = useMemo(
    () => (racks ?? []).filter((r) => !q || `${r.name} ${r.site ?? ""} ${r.row ?? ""}`.toLowerCase().includes(q.toLowerCase())),
    [racks, q],
  );
  const totals = (racks ?? []).reduce((a, r) => ({ u: a.u + r.heightU, used: a.used + r.usedU, m: a.m + r.machineCount }), { u: 0, used: 0, m: 0 });

  return (
    <div>
      <PageHeader
        title="Racks"
        subtitle={racks ? `${racks.length} racks · ${totals.m} machines · ${totals.used}/${totals.u}U used` : undefined}
        actions={
          <>
            <input className="input w-56" placeholder="Filter racks…" aria-label="Filter racks" value={q} onChange={(e) => setQ(e.target.value)} />
            <button className="btn btn-primary" disabled={!can("operator")} title={can("operator") ? undefined : NEEDS_OPERATOR} onClick={() => setCreating(true)}>
              New rack
            </button>
          </>
        }
      />
      <div className="mb-4">
        <StateLegend />
      </div>
      <ErrorBanner message={error ? errorInfo(error).message : del.error ? errorInfo(del.error).message : null} />
      {isLoading && <p className="text-slate-500">Loading racks…</p>}
      {racks && racks.length === 0 && (
        <div className="card p-8 text-center text-slate-600">No racks yet. Create one, then enroll machines into it.</div>
      )}
      <div className="flex flex-wrap gap-4">
        {shown.map((r) => (
          <div key={r.id}>
            <RackElevation rack={r} />
            {can("operator") && (
              <div className="mt-1 flex gap-2 text-xs">
                <button className="text-blue-700 hover:underline" onClick={() => setEditing(r)}>
                  Edit {r.name}
                </button>
                <button
                  className="text-red-700 hover:underline disabled:text-slate-400 disabled:no-underline"
                  disabled={r.machineCount > 0}
                  title={r.machineCount > 0 ? "Only empty racks can be deleted" : undefined}
                  onClick={() =>
                    void ask({ title: `Delete rack ${r.name}?`, message: "This cannot be undone.", confirmLabel: "Delete", danger: true }).then(
                      (ok) => ok !== null && del.mutate({ id: r.id }),
                    )
                  }
                >
                  Delete
                </button>
              </div>
            )}
          </div>
        ))}
      </div>
      <Dialog open={creating} onClose={() => setCreating(false)} title="New rack">
        <RackForm onDone={() => setCreating(false)} />
      </Dialog>
      <Dialog open={!!editing} onClose={() => setEditing(null)} title={`Edit rack ${editing?.name ?? ""}`}>
        {editing && <RackForm rack={editing} onDone={() => setEditing(null)} />}
      </Dialog>
    </div>
  );
}
