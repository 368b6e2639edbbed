import type { MachineState } from "@/lib/lifecycle";
import type { PowerState } from "@/lib/schemas";

/**
 * Colour per lifecycle state, shared by the table badges and the rack elevation. Badges are 50/700 pairs and slots
 * 300 shades under dark text, so both keep their contrast when dark mode turns the palette round (app/theme-dark.css).
 */
export const STATE_COLORS: Record<MachineState, { badge: string; slot: string }> = {
  enrolled: { badge: "bg-slate-100 text-slate-700 ring-slate-300", slot: "bg-slate-300 border-slate-400" },
  manageable: { badge: "bg-indigo-50 text-indigo-700 ring-indigo-200", slot: "bg-indigo-300 border-indigo-500" },
  inspecting: { badge: "bg-cyan-50 text-cyan-800 ring-cyan-200", slot: "bg-cyan-300 border-cyan-500" },
  inspect_failed: { badge: "bg-red-50 text-red-700 ring-red-200", slot: "bg-red-300 border-red-600" },
  available: { badge: "bg-emerald-50 text-emerald-700 ring-emerald-200", slot: "bg-emerald-300 border-emerald-500" },
  deploying: { badge: "bg-amber-50 text-amber-800 ring-amber-200", slot: "bg-amber-300 border-amber-500" },
  deploy_failed: { badge: "bg-red-50 text-red-700 ring-red-200", slot: "bg-red-300 border-red-600" },
  deployed: { badge: "bg-blue-50 text-blue-700 ring-blue-200", slot: "bg-blue-300 border-blue-600" },
  cleaning: { badge: "bg-violet-50 text-violet-700 ring-violet-200", slot: "bg-violet-300 border-violet-500" },
  clean_failed: { badge: "bg-red-50 text-red-700 ring-red-200", slot: "bg-red-300 border-red-600" },
};

export const POWER_COLORS: Record<PowerState, string> = {
  on: "bg-emerald-500",
  off: "bg-slate-400",
  unknown: "bg-amber-400",
};
