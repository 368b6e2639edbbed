"use client";
import type { LogLineDto } from "@/lib/jobs";
import { INSTALLER_PHASES, phasesReached } from "@/lib/installer-phases";

/** Installer progress above the log pane: the phases its log reached (nothing for jobs without installer phases). */
export function InstallerPhases({ lines }: { lines: LogLineDto[] }) {
  const reached = phasesReached(lines);
  if (!reached.size) return null;
  const last = INSTALLER_PHASES.filter((p) => reached.has(p)).at(-1);
  return (
    <ol className="flex flex-wrap gap-1 text-xs" aria-label="Installer progress" data-testid="installer-phases">
      {INSTALLER_PHASES.map((p) => (
        <li key={p} aria-current={p === last ? "step" : undefined} className={`rounded px-2 py-0.5 ${p === last ? "bg-sky-600 text-white" : reached.has(p) ? "bg-sky-100 text-sky-900" : "bg-slate-100 text-slate-600"}`}>
          {p}
        </li>
      ))}
    </ol>
  );
}
