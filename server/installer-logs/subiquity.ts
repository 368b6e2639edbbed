/**
 * Ubuntu's installer (subiquity, with curtin) reports progress through its `reporting:` webhook: one JSON POST
 * per event, to <install files URL>/events here (install-token protected, autoinstall user-data sets it).
 * Shape (curtin ReportingEvent.as_dict; subiquity adds level):
 *   {"name": "subiquity/Install/install/curthooks", "description": "...", "event_type": "start" | "finish",
 *    "origin": "curtin", "timestamp": 1733280000.1, "result": "SUCCESS" | "WARN" | "FAIL", "level": "INFO"}
 */
import { z } from "zod";
import type { DiPhase } from "./di-phases";

const text = (max: number) => z.string().max(max).transform((s) => s.replace(/[\u0000-\u001f\u007f]/g, " "));
export const subiquityEventSchema = z.object({
  name: text(512),
  description: text(4096).optional().default(""),
  event_type: z.enum(["start", "finish", "progress", "log_dump"]).or(text(32)),
  origin: text(64).optional(),
  timestamp: z.number().finite().optional(),
  result: z.enum(["SUCCESS", "WARN", "FAIL"]).optional(),
  level: text(16).optional(),
});
export type SubiquityEvent = z.output<typeof subiquityEventSchema>;

export function subiquityLine(e: SubiquityEvent): string {
  return `${e.event_type} ${e.name}${e.result ? ` ${e.result}` : ""}${e.description ? `: ${e.description}` : ""}`;
}

const PHASES: [RegExp, DiPhase][] = [
  [/(^|\/)(Network|network)/, "network"],
  [/partitioning|\/storage/i, "partitioning"],
  [/extract|curtin_install|install\/.*base/i, "base system"],
  [/install_package|apt|pkgsel/i, "packages"],
  [/grub|bootloader|install_boot/i, "boot loader"],
  [/postinstall|\/late|run_late|finish/i, "finish"],
];

export function subiquityPhase(e: SubiquityEvent): DiPhase | null {
  if (e.event_type !== "start") return null;
  for (const [re, p] of PHASES) if (re.test(e.name)) return p;
  return null;
}

/** A FAIL result ends the install (subiquity shows its error screen and stops). */
export function subiquityFatal(e: SubiquityEvent): string | null {
  return e.event_type === "finish" && e.result === "FAIL" ? `${e.name} failed${e.description ? `: ${e.description}` : ""}` : null;
}
