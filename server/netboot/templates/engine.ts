/**
 * One Eta instance per output format, each with the escape function of that format, so `<%= value %>` is
 * always escaped for the file it lands in. Raw output (`<%~ %>`) is used only for text that was itself
 * rendered or quoted by a helper below.
 */
import { Eta } from "eta";

/** A value for a line-based format (preseed, ifupdown, keyfile): never a control character (newline adds a directive). */
export function lineValue(v: unknown): string {
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- callers pass scalars; String() is the rendering
  const s = String(v ?? "");
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new Error(`refusing a value with a control character: ${JSON.stringify(s)}`);
  return s;
}

/** POSIX shell single quoting. */
export function sh(v: unknown): string {
  return `'${lineValue(v).replaceAll("'", `'\\''`)}'`;
}

/** Shell word: bare when it is obviously safe, single-quoted otherwise (ifcfg files are sourced by shells). */
export function shWord(v: unknown): string {
  const s = lineValue(v);
  return /^[A-Za-z0-9._:/@,+=-]+$/.test(s) ? s : sh(s);
}

/** YAML scalar: a JSON string is a valid YAML double-quoted scalar. */
export function yaml(v: unknown): string {
  return JSON.stringify(v ?? null);
}

/** GLib key-file value (NetworkManager keyfile): backslash escapes, single line. */
export function keyfile(v: unknown): string {
  return lineValue(v).replaceAll("\\", "\\\\").replace(/^ /, "\\s");
}

export type Format = "line" | "yaml" | "shell" | "keyfile";
const ESCAPES: Record<Format, (v: unknown) => string> = { line: lineValue, yaml, shell: shWord, keyfile };

const engines = new Map<Format, Eta>();
function engine(format: Format): Eta {
  let e = engines.get(format);
  if (!e) {
    // autoTrim: false keeps the templates' line structure exactly as written.
    e = new Eta({ autoEscape: true, escapeFunction: ESCAPES[format], autoTrim: false, useWith: false, cache: true });
    engines.set(format, e);
  }
  return e;
}

/** Compile once (cached by name) and render with `it` = data. */
export function render(format: Format, name: string, template: string, data: object): string {
  const e = engine(format);
  const key = `@${name}`;
  if (!e.templatesSync.get(key)) e.loadTemplate(key, template);
  return e.render(key, data);
}
