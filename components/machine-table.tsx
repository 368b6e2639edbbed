"use client";
import Link from "next/link";
import type { MachineRow } from "@/lib/dto";
import type { SortField } from "@/lib/schemas";
import { relativeTime } from "@/lib/format";
import { PowerDot, StateBadge } from "./ui";
import type { MachineQuery } from "./use-machine-query";

const COLUMNS: { key: string; label: string; sort?: SortField; className?: string }[] = [
  { key: "name", label: "Name", sort: "name" },
  { key: "state", label: "State", sort: "state" },
  { key: "power", label: "Power", sort: "power" },
  { key: "rack", label: "Rack / U", sort: "rack" },
  { key: "mac", label: "Boot MAC", sort: "mac" },
  { key: "ip", label: "IP", sort: "ip" },
  { key: "os", label: "OS profile" },
  { key: "error", label: "Last error", className: "w-1/4" },
];

export function MachineTable({
  rows,
  query,
  update,
  isSelected,
  toggle,
  pageChecked,
  togglePage,
}: {
  rows: MachineRow[];
  query: MachineQuery;
  update: (p: Partial<MachineQuery>) => void;
  isSelected: (id: number) => boolean;
  toggle: (id: number) => void;
  pageChecked: boolean | "mixed";
  togglePage: () => void;
}) {
  const sortBy = (f: SortField) => update({ sort: f, dir: query.sort === f && query.dir === "asc" ? "desc" : "asc" });
  return (
    <div className="card overflow-x-auto">
      <table className="w-full text-left text-sm" aria-label="Machines">
        <thead className="border-b border-slate-200 bg-slate-50 text-xs uppercase tracking-wide text-slate-600">
          <tr>
            <th className="w-8 px-3 py-2">
              <input
                type="checkbox"
                aria-label="Select this page"
                checked={pageChecked === true}
                ref={(el) => {
                  if (el) el.indeterminate = pageChecked === "mixed";
                }}
                onChange={togglePage}
              />
            </th>
            {COLUMNS.map((c) => (
              <th
                key={c.key}
                className={`px-3 py-2 font-semibold ${c.className ?? ""}`}
                aria-sort={c.sort && query.sort === c.sort ? (query.dir === "asc" ? "ascending" : "descending") : undefined}
              >
                {c.sort ? (
                  <button type="button" className="inline-flex items-center gap-1 uppercase hover:text-slate-900" onClick={() => sortBy(c.sort!)}>
                    {c.label}
                    <span aria-hidden className="text-[10px]">{query.sort === c.sort ? (query.dir === "asc" ? "▲" : "▼") : ""}</span>
                  </button>
                ) : (
                  c.label
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {rows.map((m) => (
            <tr key={m.id} data-testid="machine-row" data-machine={m.name} className={isSelected(m.id) ? "bg-blue-50" : "hover:bg-slate-50"}>
              <td className="px-3 py-1.5">
                <input type="checkbox" aria-label={`Select ${m.name}`} checked={isSelected(m.id)} onChange={() => toggle(m.id)} />
              </td>
              <td className="px-3 py-1.5 font-medium">
                <Link href={`/machines/${m.id}`} className="text-blue-700 hover:underline">
                  {m.name}
                </Link>
                {m.maintenance && <span className="ml-1.5 rounded bg-amber-100 px-1 text-[10px] font-semibold uppercase text-amber-800">maint</span>}
              </td>
              <td className="px-3 py-1.5">
                <StateBadge state={m.state} />
              </td>
              <td className="px-3 py-1.5">
                <PowerDot power={m.powerState} pending={m.powerPending} withLabel />
                {m.bmcReachable === false && (
                  <span className="ml-1 text-xs text-red-700" title={`last seen ${relativeTime(m.bmcLastSeen)}`} data-testid="bmc-unreachable">
                    BMC unreachable · last seen {relativeTime(m.bmcLastSeen)}
                  </span>
                )}
              </td>
              <td className="whitespace-nowrap px-3 py-1.5 text-slate-700">
                {m.rackName ? `${m.rackName} / U${m.uPosition}` : <span className="text-slate-400">unracked</span>}
              </td>
              <td className="px-3 py-1.5 font-mono text-xs">{m.bootMac}</td>
              <td className="px-3 py-1.5 font-mono text-xs">{m.ip ?? "—"}</td>
              <td className="px-3 py-1.5 text-slate-700">{m.osProfileName ?? "—"}</td>
              <td className="max-w-xs truncate px-3 py-1.5 text-xs text-red-700" title={m.lastError ?? undefined}>
                {m.lastError}
              </td>
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={COLUMNS.length + 1} className="px-3 py-8 text-center text-slate-500">
                No machines match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
