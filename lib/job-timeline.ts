/**
 * The deploy timeline's vocabulary, shared by the job record (server/orchestrator/job-record.ts) and the job page
 * (components/deploy-timeline.tsx): what an entry on the time axis is, its sources, and the URL form of a source filter.
 */

export const TIMELINE_SOURCES = ["step", "agent", "installer", "server", "event", "console"] as const;
export type TimelineSource = (typeof TIMELINE_SOURCES)[number];

export const SOURCE_LABELS: Record<TimelineSource, string> = {
  step: "Steps",
  agent: "Agent",
  installer: "Installer",
  server: "Server",
  event: "Events",
  console: "Console",
};

export interface TimelineEntry {
  /** ms since the epoch */
  ts: number;
  source: TimelineSource;
  stepId: number | null;
  /** The step the entry belongs to, or that was running when it happened. */
  stepName: string | null;
  text: string;
}

/**
 * The sources shown, from the URL's `sources` parameter (comma separated): absent means all; unknown names are
 * dropped; an empty value means none.
 */
export function parseSources(param: string | null): Set<TimelineSource> {
  if (param === null) return new Set(TIMELINE_SOURCES);
  return new Set(param.split(",").filter((s): s is TimelineSource => (TIMELINE_SOURCES as readonly string[]).includes(s)));
}

/** The `sources` parameter for a set: null (leave it out) when every source is shown. */
export function sourcesParam(shown: Set<TimelineSource>): string | null {
  if (TIMELINE_SOURCES.every((s) => shown.has(s))) return null;
  return TIMELINE_SOURCES.filter((s) => shown.has(s)).join(",");
}

/** Entries per source, for the filter's counts. */
export function countBySource(entries: readonly TimelineEntry[]): Record<TimelineSource, number> {
  const n = Object.fromEntries(TIMELINE_SOURCES.map((s) => [s, 0])) as Record<TimelineSource, number>;
  for (const e of entries) n[e.source]++;
  return n;
}

/** Index of the first entry of a step in `entries` (the step's own start entry counts), or -1. */
export function firstIndexOfStep(entries: readonly TimelineEntry[], stepId: number): number {
  return entries.findIndex((e) => e.stepId === stepId);
}

/** "12:03:04.512" in UTC, the axis' time column (the record's text rendering is UTC too). */
export function axisTime(ts: number): string {
  return new Date(ts).toISOString().slice(11, 23);
}
