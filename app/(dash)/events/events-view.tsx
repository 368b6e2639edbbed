"use client";
import { useQuery } from "@tanstack/react-query";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useEffect, useMemo, useState } from "react";
import type { EventFilter } from "@/lib/schemas";
import { EventList } from "@/components/event-list";
import { useTRPC } from "@/components/trpc";
import { PageHeader } from "@/components/ui";

/** URL keys of the filter: ?machine=&kind=&actor=&from=&to=&q= (from/to as local "YYYY-MM-DDTHH:MM"). */
const KEYS = ["machine", "kind", "actor", "from", "to", "q"] as const;
type Key = (typeof KEYS)[number];

function toMs(local: string | null): number | undefined {
  if (!local) return undefined;
  const t = new Date(local).getTime();
  return Number.isFinite(t) && t >= 0 ? t : undefined;
}

/** The Events page: filters (machine, kind, actor, time range) and text search, all kept in the URL. */
export function EventsView() {
  const trpc = useTRPC();
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const { data: facets } = useQuery(trpc.events.facets.queryOptions());
  const values = useMemo(() => Object.fromEntries(KEYS.map((k) => [k, params.get(k) ?? ""])) as Record<Key, string>, [params]);
  const filter = useMemo<EventFilter>(
    () => ({
      machine: values.machine || undefined,
      kind: values.kind || undefined,
      actor: values.actor || undefined,
      from: toMs(values.from),
      to: toMs(values.to),
      q: values.q || undefined,
    }),
    [values],
  );
  const set = useCallback(
    (patch: Partial<Record<Key, string>>) => {
      const sp = new URLSearchParams();
      for (const k of KEYS) {
        const v = (patch[k] ?? values[k]).trim();
        if (v) sp.set(k, v);
      }
      const qs = sp.toString();
      router.replace(qs ? `${pathname}?${qs}` : pathname, { scroll: false });
    },
    [values, router, pathname],
  );
  // Typed boxes are debounced so each keystroke does not hit the server.
  const [text, setText] = useState({ q: values.q, machine: values.machine });
  useEffect(() => {
    if (text.q === values.q && text.machine === values.machine) return;
    const t = setTimeout(() => set(text), 300);
    return () => clearTimeout(t);
  }, [text, values.q, values.machine, set]);
  const kindPrefixes = useMemo(() => [...new Set((facets?.kinds ?? []).map((k) => k.split(".")[0] + "."))], [facets]);
  const any = KEYS.some((k) => values[k]);

  return (
    <div>
      <PageHeader title="Events" subtitle="Every change, by whom and when; newest first. Filters are kept in the address, so a view can be shared." />
      <form className="card mb-3 flex flex-wrap items-end gap-2 p-3" aria-label="Event filters" onSubmit={(e) => e.preventDefault()}>
        <label className="block">
          <span className="label">Search</span>
          <input className="input w-64" type="search" placeholder="Text in the message…" value={text.q} onChange={(e) => setText({ ...text, q: e.target.value })} maxLength={200} />
        </label>
        <label className="block">
          <span className="label">Machine</span>
          <input className="input w-44" placeholder="Exact name" value={text.machine} onChange={(e) => setText({ ...text, machine: e.target.value })} maxLength={253} />
        </label>
        <label className="block">
          <span className="label">Kind</span>
          <select className="input w-52" value={values.kind} onChange={(e) => set({ kind: e.target.value })}>
            <option value="">Any kind</option>
            {kindPrefixes.map((p) => (
              <option key={p} value={p}>
                {p}* (all)
              </option>
            ))}
            {facets?.kinds.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label className="block">
          <span className="label">Actor</span>
          <select className="input w-44" value={values.actor} onChange={(e) => set({ actor: e.target.value })}>
            <option value="">Anyone</option>
            {facets?.actors.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label className="block">
          <span className="label">From</span>
          <input className="input w-52" type="datetime-local" value={values.from} onChange={(e) => set({ from: e.target.value })} />
        </label>
        <label className="block">
          <span className="label">To</span>
          <input className="input w-52" type="datetime-local" value={values.to} onChange={(e) => set({ to: e.target.value })} />
        </label>
        {any && (
          <button
            type="button"
            className="pb-2 text-sm text-blue-700 hover:underline"
            onClick={() => {
              setText({ q: "", machine: "" });
              router.replace(pathname, { scroll: false });
            }}
          >
            Clear filters
          </button>
        )}
      </form>
      <div className="card p-4">
        <EventList limit={100} filter={filter} />
      </div>
    </div>
  );
}
