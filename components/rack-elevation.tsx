"use client";
import { relativeTime } from "@/lib/format";
import Link from "next/link";
import type { RackElevation as Rack } from "@/lib/dto";
import { STATE_LABELS } from "@/lib/lifecycle";
import { effectiveFirmware, firmwareLabel } from "@/lib/schemas";
import { POWER_COLORS, STATE_COLORS } from "./state-style";

const SLOT_PX = 16;

/**
 * A rack drawn as an elevation: U numbers down the side (top U at the top), each machine a block at its
 * U position and height, coloured by state, with a power dot. Hover shows details; click opens the machine.
 */
export function RackElevation({ rack }: { rack: Rack }) {
  const slots = Array.from({ length: rack.heightU }, (_, i) => rack.heightU - i);
  return (
    <figure className="card w-64 shrink-0 p-3" aria-label={`Rack ${rack.name}`} data-testid="rack-elevation">
      <figcaption className="mb-2 flex items-baseline justify-between">
        <span className="font-semibold">{rack.name}</span>
        <span className="text-xs text-slate-500">
          {rack.usedU}/{rack.heightU}U · {rack.machineCount} machines
        </span>
      </figcaption>
      <div className="flex">
        <ol className="mr-1 select-none text-right font-mono text-[10px] leading-none text-slate-500" aria-hidden>
          {slots.map((u) => (
            <li key={u} style={{ height: SLOT_PX }} className="flex items-center justify-end pr-1">
              {u}
            </li>
          ))}
        </ol>
        <div
          className="relative flex-1 rounded-sm border-2 border-slate-700 bg-slate-800"
          style={{ height: rack.heightU * SLOT_PX + 4 }}
        >
          {slots.map((u) => (
            <div key={u} className="absolute inset-x-0 border-b border-slate-700/70" style={{ top: (rack.heightU - u + 1) * SLOT_PX }} />
          ))}
          {rack.machines.map((m) => {
            if (m.uPosition == null) return null;
            const top = (rack.heightU - (m.uPosition + m.uHeight - 1)) * SLOT_PX;
            const details = [
              m.name,
              `U${m.uPosition}${m.uHeight > 1 ? `–U${m.uPosition + m.uHeight - 1}` : ""}`,
              STATE_LABELS[m.state],
              `power ${m.powerState}`,
              `firmware ${firmwareLabel(m.firmware, m.bootFirmware)}`,
              m.ip ?? "",
              m.bootMac ?? "",
              m.maintenance ? "maintenance" : "",
              m.lastError ? `error: ${m.lastError}` : "",
              m.bmcReachable === false ? `BMC unreachable, last seen ${relativeTime(m.bmcLastSeen)}` : "",
            ]
              .filter(Boolean)
              .join(" · ");
            return (
              <Link
                key={m.id}
                href={`/machines/${m.id}`}
                title={details}
                aria-label={`${m.name}, ${STATE_LABELS[m.state]}, U${m.uPosition}`}
                data-testid="rack-machine"
                data-state={m.state}
                className={`group absolute inset-x-1 flex items-center gap-1.5 overflow-hidden rounded-[3px] border px-1.5 text-[11px] font-medium leading-none text-slate-900 hover:brightness-110 ${STATE_COLORS[m.state].slot} ${m.maintenance ? "bg-[repeating-linear-gradient(45deg,transparent,transparent_4px,rgba(0,0,0,.15)_4px,rgba(0,0,0,.15)_8px)]" : ""}`}
                style={{ top: top + 1, height: m.uHeight * SLOT_PX - 2 }}
              >
                <span className={`h-1.5 w-1.5 shrink-0 rounded-full ring-1 ring-slate-900/30 ${POWER_COLORS[m.powerState]}`} />
                <span className="truncate">{m.name}</span>
                {effectiveFirmware(m.firmware, m.bootFirmware) && (
                  <span className="text-[9px] font-semibold uppercase text-slate-700" data-testid="rack-firmware">
                    {effectiveFirmware(m.firmware, m.bootFirmware) === "uefi" ? "UEFI" : "BIOS"}
                  </span>
                )}
                {m.bmcReachable === false && (
                  <span className="ml-auto text-[9px] font-bold uppercase text-red-800" data-testid="bmc-unreachable">
                    BMC?
                  </span>
                )}
                {m.maintenance && <span className="ml-auto text-[9px] uppercase">maint</span>}
              </Link>
            );
          })}
        </div>
      </div>
      {(rack.site || rack.row) && (
        <div className="mt-2 text-xs text-slate-500">{[rack.site && `site ${rack.site}`, rack.row && `row ${rack.row}`].filter(Boolean).join(" · ")}</div>
      )}
    </figure>
  );
}

export function StateLegend() {
  return (
    <ul className="flex flex-wrap gap-x-3 gap-y-1 text-xs text-slate-600" aria-label="Legend">
      {(Object.keys(STATE_COLORS) as (keyof typeof STATE_COLORS)[]).map((s) => (
        <li key={s} className="flex items-center gap-1">
          <span className={`inline-block h-3 w-3 rounded-sm border ${STATE_COLORS[s].slot}`} />
          {STATE_LABELS[s]}
        </li>
      ))}
    </ul>
  );
}
