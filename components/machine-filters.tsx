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

  // Inventory filters: typed, so debounced like the search box.
  const [inv, setInv] = useState({ mem: query.minMemoryGiB?.toString() ?? "", disks: query.minDisks?.toString() ?? "", cpu: query.cpuModel ?? "" });
  useEffect(() => {
    const want = {
      minMemoryGiB: inv.mem.trim() === "" || !(Number(inv.mem) >= 0) ? undefined : Number(inv.mem),
      minDisks: inv.disks.trim() === "" || !Number.isInteger(Number(inv.disks)) || Number(inv.disks) < 0 ? undefined : Number(inv.disks),
      cpuModel: inv.cpu.trim() || undefined,
    };
    if (want.minMemoryGiB === query.minMemoryGiB && want.minDisks === query.minDisks && want.cpuModel === query.cpuModel) return;
    const t = setTimeout(() => update(want), 300);
    return () => clearTimeout(t);
  }, [inv, query.minMemoryGiB, query.minDisks, query.cpuModel, update]);

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
        <input
          className="input w-28"
          type="number"
          min={0}
          step="any"
          placeholder="Min GiB"
          aria-label="Minimum memory (GiB)"
          title="Minimum memory in GiB (from the agent's inventory)"
          value={inv.mem}
          onChange={(e) => setInv({ ...inv, mem: e.target.value })}
        />
        <input
          className="input w-24"
          type="number"
          min={0}
          step={1}
          placeholder="Min disks"
          aria-label="Minimum disk count"
          title="At least this many disks (from the agent's inventory)"
          value={inv.disks}
          onChange={(e) => setInv({ ...inv, disks: e.target.value })}
        />
        <input
          className="input w-40"
          type="search"
          placeholder="CPU model…"
          aria-label="CPU model"
          maxLength={100}
          value={inv.cpu}
          onChange={(e) => setInv({ ...inv, cpu: e.target.value })}
        />
        {(query.states || query.rackId || query.power || query.q || query.minMemoryGiB !== undefined || query.minDisks !== undefined || query.cpuModel) && (
          <button
            className="text-sm text-blue-700 hover:underline"
            onClick={() => {
              setText("");
              setInv({ mem: "", disks: "", cpu: "" });
              update({ states: undefined, rackId: undefined, power: undefined, q: undefined, minMemoryGiB: undefined, minDisks: undefined, cpuModel: undefined });
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
