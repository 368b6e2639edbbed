"use client";
import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { MACHINE_STATES, STATE_LABELS, type MachineState } from "@/lib/lifecycle";
import { POWER_STATES, type PowerState } from "@/lib/schemas";
import { useTRPC } from "./trpc";
import type { MachineQuery } from "./use-machine-query";

export function MachineFilters({ query, update }: { query: MachineQuery; update: (p: Partial<MachineQuery>) => void }) {
  const trpc = useTRPC();
  const { data: racks } = useQuery(trpc.racks.list.queryOptions());
  const [text, setText] = useState(query.q ?? "");
  // Debounce typing so each keystroke does not hit the server.
  useEffect(() => {
    if ((query.q ?? "") === text) return;
    const t = setTimeout(() => update({ q: text || undefined }), 250);
    return () => clearTimeout(t);
  }, [text, query.q, update]);

  const toggleState = (s: MachineState) => {
    const cur = new Set(query.states ?? []);
    if (cur.has(s)) cur.delete(s);
    else cur.add(s);
    update({ states: cur.size ? [...cur] : undefined });
  };

  return (
    <div className="card mb-3 space-y-2 p-3">
      <div className="flex flex-wrap items-center gap-2">
        <input
          className="input w-72"
          type="search"
          placeholder="Search name, MAC or IP…"
          aria-label="Search machines"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <select
          className="input w-44"
          aria-label="Rack"
          value={query.rackId ?? ""}
          onChange={(e) => update({ rackId: e.target.value ? Number(e.target.value) : undefined })}
        >
          <option value="">All racks</option>
          {racks?.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name}
            </option>
          ))}
        </select>
        <select
          className="input w-36"
          aria-label="Power"
          value={query.power ?? ""}
          onChange={(e) => update({ power: (e.target.value || undefined) as PowerState | undefined })}
        >
          <option value="">Any power</option>
          {POWER_STATES.map((p) => (
            <option key={p} value={p}>
              Power {p}
            </option>
          ))}
        </select>
        {(query.states || query.rackId || query.power || query.q) && (
          <button
            className="text-sm text-blue-700 hover:underline"
            onClick={() => {
              setText("");
              update({ states: undefined, rackId: undefined, power: undefined, q: undefined });
            }}
          >
            Clear filters
          </button>
        )}
      </div>
      <div className="flex flex-wrap gap-1.5" role="group" aria-label="Filter by state">
        {MACHINE_STATES.map((s) => {
          const on = query.states?.includes(s) ?? false;
          return (
            <button
              key={s}
              type="button"
              aria-pressed={on}
              onClick={() => toggleState(s)}
              className={`rounded-full border px-2.5 py-0.5 text-xs ${on ? "border-blue-600 bg-blue-600 text-white" : "border-slate-300 bg-white text-slate-700 hover:bg-slate-100"}`}
            >
              {STATE_LABELS[s]}
            </button>
          );
        })}
      </div>
    </div>
  );
}
