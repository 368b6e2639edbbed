"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { MACHINE_STATES, STATE_LABELS } from "@/lib/lifecycle";
import { EventList } from "@/components/event-list";
import { STATE_COLORS } from "@/components/state-style";
import { useTRPC } from "@/components/trpc";
import { PageHeader } from "@/components/ui";

export default function OverviewPage() {
  const trpc = useTRPC();
  const { data: s } = useQuery(trpc.machines.summary.queryOptions());
  const { data: racks } = useQuery(trpc.racks.list.queryOptions());
  const count = (state: string) => s?.byState.find((r) => r.state === state)?.n ?? 0;
  const power = (p: string) => s?.byPower.find((r) => r.power === p)?.n ?? 0;
  const failed = count("inspect_failed") + count("deploy_failed") + count("clean_failed");
  return (
    <div>
      <PageHeader title="Overview" subtitle={s ? `${s.total} machines in ${racks?.length ?? 0} racks` : undefined} />
      <div className="mb-4 grid grid-cols-2 gap-3 md:grid-cols-4">
        {[
          { label: "Machines", value: s?.total ?? 0, href: "/machines" },
          { label: "Deployed", value: count("deployed"), href: "/machines?state=deployed" },
          { label: "Failed", value: failed, href: "/machines?state=inspect_failed,deploy_failed,clean_failed", bad: failed > 0 },
          { label: "In maintenance", value: s?.maintenance ?? 0, href: "/machines" },
        ].map((c) => (
          <Link key={c.label} href={c.href} className="card block p-4 hover:border-blue-300">
            <div className="text-xs uppercase tracking-wide text-slate-500">{c.label}</div>
            <div className={`mt-1 text-2xl font-semibold ${c.bad ? "text-red-700" : ""}`}>{c.value.toLocaleString("en-US")}</div>
          </Link>
        ))}
      </div>
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-3">
        <section className="card p-4" aria-label="Machines by state">
          <h2 className="mb-2 font-semibold">By state</h2>
          <ul className="space-y-1">
            {MACHINE_STATES.map((st) => (
              <li key={st}>
                <Link href={`/machines?state=${st}`} className="flex items-center justify-between rounded px-1 py-0.5 text-sm hover:bg-slate-50">
                  <span className="flex items-center gap-2">
                    <span className={`inline-block h-3 w-3 rounded-sm border ${STATE_COLORS[st].slot}`} />
                    {STATE_LABELS[st]}
                  </span>
                  <span className="font-mono">{count(st)}</span>
                </Link>
              </li>
            ))}
          </ul>
          <h2 className="mb-2 mt-4 font-semibold">Power</h2>
          <p className="text-sm">
            on {power("on")} · off {power("off")} · unknown {power("unknown")}
          </p>
        </section>
        <section className="card p-4 lg:col-span-2" aria-label="Recent events">
          <h2 className="mb-2 font-semibold">Recent events</h2>
          <EventList limit={15} />
        </section>
      </div>
    </div>
  );
}
