"use client";
import { useState } from "react";

/**
 * The agent's hardware inventory (agent/steps/inventory.ts collectInventory) as tables: CPU, memory, disks, NICs.
 * The inventory is JSON from a machine, so every field is read defensively; anything else stays in "Raw JSON".
 */
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const rec = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.map(rec) : []);

/** 1536 MiB → "1.5 GiB"; binary units as the kernel reports them. */
export function bytes(n: number | null): string {
  if (n === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

function Table({ label, head, rows }: { label: string; head: string[]; rows: (string | null)[][] }) {
  return (
    <div className="min-w-0">
      <h3 className="mb-1 text-sm font-semibold">{label}</h3>
      {rows.length === 0 ? (
        <p className="text-xs text-slate-500">None reported.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className="w-full text-xs" aria-label={label}>
            <thead className="bg-slate-50 text-left text-slate-600">
              <tr>
                {head.map((h) => (
                  <th key={h} scope="col" className="px-2 py-1 font-medium">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {rows.map((r, i) => (
                <tr key={i}>
                  {r.map((c, j) => (
                    <td key={j} className="break-all px-2 py-1 font-mono">
                      {c ?? "—"}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function InventoryTables({ inventory }: { inventory: Record<string, unknown> }) {
  const [raw, setRaw] = useState(false);
  const cpu = rec(inventory.cpu);
  const flags = Array.isArray(cpu.flags) ? cpu.flags.filter((f): f is string => typeof f === "string") : [];
  const disks = list(inventory.disks);
  const nics = list(inventory.nics);
  return (
    <div className="space-y-4" data-testid="inventory">
      {inventory.simulated === true && <p className="text-sm text-violet-800">Reported by a simulated agent (demo lab), not by hardware.</p>}
      <div className="grid gap-4 md:grid-cols-2">
        <Table
          label="CPU"
          head={["Model", "Sockets", "Cores", "Threads", "Flags"]}
          rows={[[str(cpu.model), str(cpu.sockets), str(cpu.cores), str(cpu.threads ?? inventory.cpus), flags.join(" ") || null]]}
        />
        <Table label="Memory" head={["Total"]} rows={[[bytes(num(inventory.memoryBytes) ?? (num(inventory.memoryMiB) !== null ? num(inventory.memoryMiB)! * 2 ** 20 : null))]]} />
      </div>
      <Table
        label="Disks"
        head={["Device", "Size", "Model", "Serial", "Type", "Transport"]}
        rows={disks.map((d) => [
          str(d.path) ?? str(d.name),
          bytes(num(d.sizeBytes)),
          str(d.model),
          str(d.serial),
          d.rotational === true ? "HDD" : d.rotational === false ? "SSD" : null,
          [str(d.transport), d.removable === true ? "removable" : null].filter(Boolean).join(", ") || null,
        ])}
      />
      <Table
        label="NICs"
        head={["Name", "MAC", "State", "Speed", "MTU", "Driver", "Addresses"]}
        rows={nics.map((n) => [
          str(n.name),
          str(n.mac),
          str(n.state),
          num(n.speedMbps) !== null ? `${num(n.speedMbps)} Mb/s` : null,
          str(n.mtu),
          str(n.driver),
          Array.isArray(n.addresses) ? n.addresses.filter((a) => typeof a === "string").join(" ") || null : null,
        ])}
      />
      <div className="text-xs text-slate-500">
        {str(inventory.collectedAt) && <span className="mr-3">Collected {str(inventory.collectedAt)}</span>}
        <button type="button" className="text-blue-700 hover:underline" aria-expanded={raw} onClick={() => setRaw(!raw)}>
          {raw ? "Hide raw JSON" : "Raw JSON"}
        </button>
      </div>
      {raw && <pre className="max-h-64 overflow-auto text-xs">{JSON.stringify(inventory, null, 2)}</pre>}
    </div>
  );
}
