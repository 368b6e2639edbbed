"use client";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useMemo, useState } from "react";
import { plural } from "@/lib/format";
import { BulkActions } from "@/components/bulk-actions";
import type { Selection } from "@/lib/schemas";
import { BulkPower } from "@/components/bulk-power";
import { CsvImport } from "@/components/csv-import";
import { MachineFilters } from "@/components/machine-filters";
import { MachineTable } from "@/components/machine-table";
import { NEEDS_OPERATOR, useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { Dialog, ErrorBanner, PageHeader } from "@/components/ui";
import { filterOf, PAGE_SIZES, useMachineQuery, type MachineQuery } from "@/components/use-machine-query";

/** The CSV export of the table's filter and sort (server/http/machines-csv.ts reads the same keys). */
function csvHref(q: MachineQuery): string {
  const sp = new URLSearchParams();
  if (q.states?.length) sp.set("state", q.states.join(","));
  if (q.rackId) sp.set("rack", String(q.rackId));
  if (q.power) sp.set("power", q.power);
  if (q.q) sp.set("q", q.q);
  if (q.minMemoryGiB !== undefined) sp.set("mem", String(q.minMemoryGiB));
  if (q.minDisks !== undefined) sp.set("disks", String(q.minDisks));
  if (q.cpuModel) sp.set("cpu", q.cpuModel);
  sp.set("sort", q.sort);
  sp.set("dir", q.dir);
  return `/api/machines.csv?${sp.toString()}`;
}

export function MachinesView() {
  const trpc = useTRPC();
  const { can } = useSession();
  const [query, update] = useMachineQuery();
  const { data, error, isFetching } = useQuery(trpc.machines.list.queryOptions(query, { placeholderData: keepPreviousData }));
  const [ids, setIds] = useState<Set<number>>(new Set());
  const [allMatching, setAllMatching] = useState(false);
  const [importing, setImporting] = useState(false);
  const filterKey = JSON.stringify(filterOf(query));

  // A new filter is a new question: drop the old selection (adjusted while rendering, not in an effect).
  const [selectionKey, setSelectionKey] = useState(filterKey);
  if (selectionKey !== filterKey) {
    setSelectionKey(filterKey);
    setIds(new Set());
    setAllMatching(false);
  }

  const rows = data?.rows ?? [];
  const total = data?.total ?? 0;
  const pageIds = rows.map((r) => r.id);
  const onPage = pageIds.filter((id) => ids.has(id)).length;
  const pageChecked = allMatching || (onPage > 0 && onPage === pageIds.length) ? true : onPage > 0 ? "mixed" : false;
  const selection: Selection = useMemo(() => (allMatching ? { filter: filterOf(query) } : { ids: [...ids] }), [allMatching, ids, query]);
  const selectedCount = allMatching ? total : ids.size;
  const pages = Math.max(1, Math.ceil(total / query.pageSize));
  const first = total === 0 ? 0 : (query.page - 1) * query.pageSize + 1;
  const last = Math.min(total, query.page * query.pageSize);

  const toggle = (id: number) => {
    setAllMatching(false);
    setIds((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  };
  const togglePage = () => {
    if (pageChecked === true) {
      setAllMatching(false);
      setIds((s) => new Set([...s].filter((id) => !pageIds.includes(id))));
    } else setIds((s) => new Set([...s, ...pageIds]));
  };
  const clear = () => {
    setIds(new Set());
    setAllMatching(false);
  };

  return (
    <div>
      <PageHeader
        title="Machines"
        subtitle={data ? `${plural(total, "machine")} match${total === 1 ? "es" : ""}` : "Loading…"}
        actions={
          <>
            <a className="btn" href={csvHref(query)} download data-testid="export-csv" title="Download the machines of the current filter and sort as CSV">
              Export CSV
            </a>
            <button className="btn" disabled={!can("operator")} title={can("operator") ? undefined : NEEDS_OPERATOR} onClick={() => setImporting(true)}>
              Import CSV
            </button>
            {can("operator") ? (
              <Link href="/machines/new" className="btn btn-primary">
                Enroll machine
              </Link>
            ) : (
              <button className="btn btn-primary" disabled title={NEEDS_OPERATOR}>
                Enroll machine
              </button>
            )}
          </>
        }
      />
      <MachineFilters query={query} update={update} />
      <ErrorBanner message={error ? errorInfo(error).message : null} />
      <div className="mb-2 flex min-h-9 flex-wrap items-center justify-between gap-2 text-sm">
        <div className="flex flex-wrap items-center gap-3" data-testid="selection-status">
          {selectedCount > 0 ? (
            <>
              <span className="font-semibold">
                {allMatching ? `All ${plural(total, "machine")} matching the filter selected` : `${plural(selectedCount, "machine")} selected`}
              </span>
              {!allMatching && pageChecked === true && total > pageIds.length && (
                <button className="text-blue-700 hover:underline" onClick={() => setAllMatching(true)}>
                  Select all {plural(total, "machine")} matching the filter
                </button>
              )}
              <button className="text-slate-600 hover:underline" onClick={clear}>
                Clear selection
              </button>
            </>
          ) : (
            <span className="text-slate-500">Select machines to act on them.</span>
          )}
        </div>
        <BulkActions selection={selection} count={selectedCount} onDone={clear} />
        <BulkPower selection={selection} count={selectedCount} />
      </div>
      <div className={isFetching ? "opacity-80 transition-opacity" : undefined}>
        <MachineTable
          rows={rows}
          query={query}
          update={update}
          isSelected={(id) => allMatching || ids.has(id)}
          toggle={toggle}
          pageChecked={pageChecked}
          togglePage={togglePage}
        />
      </div>
      <nav className="mt-3 flex flex-wrap items-center justify-between gap-2 text-sm" aria-label="Pagination">
        <span className="text-slate-600">
          {first.toLocaleString("en-US")}–{last.toLocaleString("en-US")} of {total.toLocaleString("en-US")}
        </span>
        <div className="flex flex-wrap items-center gap-2">
          <label className="flex items-center gap-1 text-slate-600">
            Rows
            <select className="input w-20 py-1" value={query.pageSize} onChange={(e) => update({ pageSize: Number(e.target.value) })}>
              {PAGE_SIZES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <button className="btn btn-sm" disabled={query.page <= 1} onClick={() => update({ page: 1 })}>
            « First
          </button>
          <button className="btn btn-sm" disabled={query.page <= 1} onClick={() => update({ page: query.page - 1 })}>
            ‹ Prev
          </button>
          <span>
            Page {query.page} of {pages}
          </span>
          <button className="btn btn-sm" disabled={query.page >= pages} onClick={() => update({ page: query.page + 1 })}>
            Next ›
          </button>
          <button className="btn btn-sm" disabled={query.page >= pages} onClick={() => update({ page: pages })}>
            Last »
          </button>
        </div>
      </nav>
      <Dialog open={importing} onClose={() => setImporting(false)} title="Import machines from CSV" wide>
        {importing && <CsvImport onDone={() => setImporting(false)} />}
      </Dialog>
    </div>
  );
}
