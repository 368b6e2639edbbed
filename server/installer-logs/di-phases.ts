/**
 * debian-installer progress from its syslog: main-menu logs `Menu item '<udeb>' selected` as it runs each step
 * (seen in ../shared/lab/installer: network-preseed, localechooser, choose-mirror, download-installer …), netcfg
 * and preseed log their own lines. Fatal conditions are the ones after which d-i waits at a prompt forever
 * under priority=critical (a failed download of installer components, a failed step).
 */
import { INSTALLER_PHASES, type InstallerPhase } from "../../lib/installer-phases";
import type { SyslogMessage } from "./syslog";

export const DI_PHASES = INSTALLER_PHASES;
export type DiPhase = InstallerPhase;

/** main-menu item (udeb name) → phase. */
const MENU_ITEMS: [RegExp, DiPhase][] = [
  [/^(ethdetect|netcfg|network-preseed)$/, "preseed"],
  [/^(download-installer|anna)$/, "installer components"],
  [/^(disk-detect|partman-base|partman|partman-auto)$/, "partitioning"],
  [/^(bootstrap-base|base-installer)$/, "base system"],
  [/^(apt-setup-udeb|pkgsel|apt-mirror-setup)$/, "packages"],
  [/^(grub-installer|nobootloader|lilo-installer|elilo-installer)$/, "boot loader"],
  [/^finish-install$/, "finish"],
];

/** The phase a message starts, or null. */
export function diPhaseOf(m: SyslogMessage): DiPhase | null {
  const item = /Menu item '([^']+)' selected/.exec(m.msg);
  if (m.app === "main-menu" && item) {
    for (const [re, phase] of MENU_ITEMS) if (re.test(item[1]!)) return phase;
    return null;
  }
  if (m.app === "netcfg") return "network";
  if (m.app === "preseed" && /successfully loaded preseed file/.test(m.msg)) return "preseed";
  return null;
}

/** Why the install cannot go on (d-i now waits at a prompt), or null. */
export function diFatal(m: SyslogMessage): string | null {
  if (m.app === "anna" && /package retrieval failed/.test(m.msg)) return "installer components could not be downloaded";
  if (m.app === "main-menu" && /WARNING \*\*: Configuring '([^']+)' failed/.test(m.msg)) return `installer step ${/'([^']+)'/.exec(m.msg)![1]} failed`;
  if (m.app === "base-installer" && /error|failed/i.test(m.msg) && m.severity <= 3) return "the base system could not be installed";
  if (m.app === "grub-installer" && m.severity <= 3) return "the boot loader could not be installed";
  return null;
}

/** Phase tracking for one install. */
export class DiProgress {
  phase: DiPhase | null = null;
  readonly reached: { phase: DiPhase; at: number }[] = [];

  /** The phase this message moves to (only forward moves count), or null. */
  see(m: SyslogMessage, at: number): DiPhase | null {
    return this.move(diPhaseOf(m), at);
  }

  /** Move to `p` if it is ahead of the current phase; returns it then. */
  move(p: DiPhase | null, at: number): DiPhase | null {
    if (!p) return null;
    const cur = this.phase ? DI_PHASES.indexOf(this.phase) : -1;
    if (DI_PHASES.indexOf(p) <= cur) return null;
    this.phase = p;
    this.reached.push({ phase: p, at });
    return p;
  }
}
