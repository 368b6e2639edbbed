"use client";
import { useQueries } from "@tanstack/react-query";
import Link from "next/link";
import { use, useState } from "react";
import { useSession } from "@/components/session";
import { SubnetForm } from "@/components/subnet-form";
import { errorInfo, useTRPC } from "@/components/trpc";
import { Dialog, ErrorBanner, PageHeader, StateBadge } from "@/components/ui";

const PAGE = 200;

export default function SubnetPage({ params }: { params: Promise<{ id: string }> }) {
  const { id: raw } = use(params);
  const id = Number(raw);
  const trpc = useTRPC();
  const { can } = useSession();
  const [editing, setEditing] = useState(false);
  const valid = Number.isInteger(id) && id > 0;
  // Keyset pages: each "Show more" adds the last address shown as the next page's cursor.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const pageQueries = useQueries({ queries: cursors.map((after) => ({ ...trpc.subnets.get.queryOptions({ id: valid ? id : 1, after, limit: PAGE }), enabled: valid })) });
  const first = pageQueries[0]!;
  if (!valid) return <p className="text-red-700">Not a subnet id: {raw}</p>;
  const s = first.data;
  const pages = pageQueries.flatMap((q) => (q.data ? [q.data] : []));
  const rows = pages.flatMap((p) => p.allocations);
  const fetching = pageQueries.some((q) => q.isFetching);
  const hasMore = pages.length === cursors.length && (pages.at(-1)?.more ?? false);
  return (
    <div>
      <PageHeader
        title={s ? `Subnet ${s.name}` : "Subnet"}
        subtitle={
          s && (
            <>
              <span className="font-mono">{s.cidr}</span>
              {s.vlanId != null && ` · VLAN ${s.vlanId}`} · <span data-testid="subnet-allocated">{s.allocated.toLocaleString("en")}</span> allocated ·{" "}
              <span data-testid="subnet-free" title={s.free}>
                {s.free.length > 12 ? `${s.free.slice(0, 3)}… (${s.free.length} digits)` : Number(s.free).toLocaleString("en")}
              </span>{" "}
              free
            </>
          )
        }
        actions={
          <>
            <Link className="btn" href="/subnets">
              All subnets
            </Link>
            {can("admin") && s && (
              <button className="btn" onClick={() => setEditing(true)}>
                Edit subnet
              </button>
            )}
          </>
        }
      />
      <ErrorBanner message={first.error ? errorInfo(first.error).message : null} />
      {s && (
        <section className="card mb-4 p-4 text-sm" aria-label="Subnet settings">
          <dl className="grid gap-x-6 gap-y-1 sm:grid-cols-2">
            <div>
              <dt className="inline text-slate-600">Gateway: </dt>
              <dd className="inline font-mono">{s.gateway ?? "—"}</dd>
            </div>
            <div>
              <dt className="inline text-slate-600">DNS: </dt>
              <dd className="inline font-mono">{s.dns.join(", ") || "—"}</dd>
            </div>
            <div>
              <dt className="inline text-slate-600">Dynamic range: </dt>
              <dd className="inline font-mono">{s.dynamic ? `${s.dynamic.start} – ${s.dynamic.end}` : "—"}</dd>
            </div>
            <div>
              <dt className="inline text-slate-600">Reserved: </dt>
              <dd className="inline font-mono">{s.reserved.map((r) => (r.start === r.end ? r.start : `${r.start} – ${r.end}`)).join(", ") || "—"}</dd>
            </div>
            {s.provisioning && <div className="text-blue-800">Provisioning subnet: its dynamic range is the netboot DHCP range.</div>}
          </dl>
        </section>
      )}
      {s && (
        <section className="card overflow-x-auto" aria-label="Allocated addresses">
          <table className="w-full text-sm">
            <thead className="bg-slate-50 text-left text-xs uppercase text-slate-600">
              <tr>
                <th className="px-3 py-2">Address</th>
                <th className="px-3 py-2">Machine</th>
                <th className="px-3 py-2">Interface</th>
                <th className="px-3 py-2">How</th>
                <th className="px-3 py-2">State</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {rows.map((a) => (
                <tr key={a.address} data-testid="allocation-row">
                  <td className="px-3 py-1.5 font-mono text-xs">{a.address}</td>
                  <td className="px-3 py-1.5">
                    <Link className="text-blue-700 hover:underline" href={`/machines/${a.machineId}`}>
                      {a.machineName}
                    </Link>
                  </td>
                  <td className="px-3 py-1.5 font-mono text-xs">{a.interface ?? a.mac ?? "—"}</td>
                  <td className="px-3 py-1.5">{a.mode === "auto" ? "allocated" : "pinned"}</td>
                  <td className="px-3 py-1.5">
                    <StateBadge state={a.machineState} />
                  </td>
                </tr>
              ))}
              {rows.length === 0 && (
                <tr>
                  <td colSpan={5} className="px-3 py-6 text-center text-slate-600">
                    No address of this subnet is allocated.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          {hasMore && (
            <div className="p-3 text-center">
              <button className="btn" disabled={fetching} onClick={() => setCursors([...cursors, rows.at(-1)!.address])}>
                {fetching ? "Loading…" : `Show more (${rows.length.toLocaleString("en")} of ${s.allocated.toLocaleString("en")})`}
              </button>
            </div>
          )}
        </section>
      )}
      <Dialog open={editing} onClose={() => setEditing(false)} title={`Edit subnet ${s?.name ?? ""}`}>
        {s && <SubnetForm subnet={s} onDone={() => setEditing(false)} />}
      </Dialog>
    </div>
  );
}
