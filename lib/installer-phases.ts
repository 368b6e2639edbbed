/** The installer phases Rackhand derives from installer logs (server/installer-logs), in order; "phase: <name>" log lines. */
export const INSTALLER_PHASES = ["network", "preseed", "installer components", "partitioning", "base system", "packages", "boot loader", "finish"] as const;
export type InstallerPhase = (typeof INSTALLER_PHASES)[number];

/** Phases reached, from a job's log lines (stream "phase"). */
export function phasesReached(lines: readonly { stream: string; text: string }[]): Set<string> {
  const out = new Set<string>();
  for (const l of lines) if (l.stream === "phase" && l.text.startsWith("phase: ")) out.add(l.text.slice(7));
  return out;
}
