"use client";
import Link from "next/link";
import type { MachineRow } from "@/lib/dto";
import type { SortField } from "@/lib/schemas";
import { relativeTime } from "@/lib/format";
import { PowerDot, StateBadge } from "./ui";
import type { MachineQuery } from "./use-machine-query";

/**
 * Columns adapt to the width the table gets (a container query on its card, so the sidebar counts): the
 * lower-priority ones drop out first (`show`, the classes of both header and cells), and below 672 px the last
 * error moves under the name. The table never needs more than its card: the error is clipped to its cell.
 */
const COLUMNS: { key: string; label: string; sort?: SortField; className?: string; show?: string }[] = [
  { key: "name", label: "Name", sort: "name" },
  { key: "state", label: "State", sort: "state" },
  { key: "power", label: "Power", sort: "power" },
  { key: "rack", label: "Rack / U", sort: "rack", show: "hidden @xl:table-cell" },
  { key: "mac", label: "Boot MAC", sort: "mac", show: "hidden @5xl:table-cell" },
  { key: "ip", label: "IP", sort: "ip", show: "hidden @2xl:table-cell" },
  { key: "os", label: "OS profile", show: "hidden @4xl:table-cell" },
  { key: "error", label: "Last error", className: "w-1/4", show: "hidden @2xl:table-cell" },
];
const show = (key: string) => COLUMNS.find((c) => c.key === key)?.show ?? "";

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
    <div className="@container card overflow-x-auto">
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
                className={`px-3 py-2 font-semibold ${c.className ?? ""} ${c.show ?? ""}`}
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
                <Link href={`/machines/${m.id}`} className="whitespace-nowrap text-blue-700 underline decoration-blue-700/30 underline-offset-2 hover:decoration-current">
                  {m.name}
                </Link>
                {m.maintenance && <span className="ml-1.5 rounded bg-amber-100 px-1 text-[10px] font-semibold uppercase text-amber-800">maint</span>}
                {m.lastError && (
                  <div className="line-clamp-2 wrap-anywhere text-xs font-normal text-red-700 @2xl:hidden" title={m.lastError}>
                    {m.lastError}
                  </div>
                )}
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
              <td className={`whitespace-nowrap px-3 py-1.5 text-slate-700 ${show("rack")}`}>
                {m.rackName ? `${m.rackName} / U${m.uPosition}` : <span className="text-slate-500">unracked</span>}
              </td>
              <td className={`px-3 py-1.5 font-mono text-xs ${show("mac")}`}>{m.bootMac}</td>
              <td className={`px-3 py-1.5 font-mono text-xs ${show("ip")}`}>{m.ip ?? "—"}</td>
              <td className={`px-3 py-1.5 text-slate-700 ${show("os")}`}>{m.osProfileName ?? "—"}</td>
              <td className={`px-3 py-1.5 text-xs text-red-700 ${show("error")}`} title={m.lastError ?? undefined}>
                <div className="line-clamp-2 max-w-[18rem] wrap-anywhere">{m.lastError}</div>
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
