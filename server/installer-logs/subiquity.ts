/**
 * Ubuntu's installer (subiquity, with curtin) reports progress through its `reporting:` webhook: one JSON POST
 * per event, to <install files URL>/events here (install-token protected, autoinstall user-data sets it).
 *
 * The shape, read from the sources (no Ubuntu installer can run here):
 *   - curtin/reporter/events.py `ReportingEvent.as_dict()`: name, description, event_type, origin ("curtin", also
 *     for subiquity's own events), timestamp (float seconds), level ("INFO", "DEBUG"); `FinishReportingEvent` adds
 *     result (SUCCESS | WARN | FAIL; level then WARN / ERROR) and, when curtin posts files, `files`
 *     [{path, content (base64), encoding}]. `report_start_event`/`report_finish_event` prefix the description with
 *     "started: ", "finished: " or "failed: ". The webhook handler POSTs `json.dumps(as_dict())`.
 *   - subiquity/server/controllers/reporting.py hands its contexts to those functions; a context's name is its path
 *     (subiquitycore/context.py `full_name`): `subiquity/<Controller>/<method>/…`, e.g.
 *     `subiquity/Install/install/curtin_install/run_curtin_step`. curtin's own events come back through journald and
 *     are re-reported below the step's context (subiquity/server/curtin.py): `…/run_curtin_step/cmd-install/
 *     stage-partitioning/builtin/cmd-block-meta`, `…/stage-extract/…`, `…/stage-curthooks/builtin/cmd-curthooks/
 *     installing-kernel`, `…/configuring-bootloader` (curtin/commands/install.py, curthooks.py).
 *   - A FAIL is not always the end: subiquity retries a package download and its `…/install_<pkg>/retrieving`
 *     context fails on each attempt that does. The install is over when the install task itself fails
 *     (`subiquity/Install/install`, where every exception of the install lands), early/late commands fail, or the
 *     error commands start (`subiquity/Error/run`). curtin run by itself (MAAS) ends with `cmd-install`.
 * Fixture (shapes from those sources, not captured): fixtures/subiquity-install-{ok,fail}.jsonl.
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
  // curtin's post_files (base64 log files): accepted, not shown; only their paths are kept.
  files: z.array(z.object({ path: text(512) }).loose()).max(32).optional(),
});
export type SubiquityEvent = z.output<typeof subiquityEventSchema>;

export function subiquityLine(e: SubiquityEvent): string {
  return `${e.event_type} ${e.name}${e.result ? ` ${e.result}` : ""}${e.description ? `: ${e.description}` : ""}`;
}

/** Start events that begin a phase, by context path (see above; only forward moves count). */
const PHASES: [RegExp, DiPhase][] = [
  [/^subiquity\/Network\//, "network"],
  [/(^|\/)stage-partitioning(\/|$)/, "partitioning"],
  [/(^|\/)stage-extract(\/|$)/, "base system"],
  // Before "packages": the boot loader's events are below stage-curthooks too.
  [/\/(configuring-bootloader|install-grub)(\/|$)/, "boot loader"],
  [/(^|\/)stage-curthooks(\/|$)/, "packages"],
  [/^subiquity\/Install\/install\/postinstall(\/|$)|^subiquity\/Late\/run$|(^|\/)stage-late(\/|$)/, "finish"],
];

export function subiquityPhase(e: SubiquityEvent): DiPhase | null {
  if (e.event_type !== "start") return null;
  for (const [re, p] of PHASES) if (re.test(e.name)) return p;
  return null;
}

const ENDS_INSTALL = /^(subiquity\/(Install\/install|Early\/run|Late\/run)|cmd-install)$/;

/** The install is over (subiquity shows its error screen and stops), or null. */
export function subiquityFatal(e: SubiquityEvent): string | null {
  if (e.event_type === "start" && e.name === "subiquity/Error/run") return "the installer is running its error commands";
  if (e.event_type !== "finish" || e.result !== "FAIL" || !ENDS_INSTALL.test(e.name)) return null;
  return `${e.name} failed${e.description ? `: ${e.description.replace(/^failed: /, "")}` : ""}`;
}
