/** Formatting shared by the UI (isomorphic). */

export function relativeTime(ts: number | null | undefined, now = Date.now()): string {
  if (ts == null) return "never";
  const s = Math.round((now - ts) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function dateTime(ts: number | null | undefined): string {
  if (ts == null) return "—";
  return new Date(ts).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export function plural(n: number, word: string, pluralWord = word + "s"): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? word : pluralWord}`;
}
