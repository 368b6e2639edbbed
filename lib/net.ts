/** Network value parsing shared by forms, CSV import and the server. */

const MAC_HEX = /^[0-9a-f]{12}$/;

/**
 * Canonical MAC form: lower-case, colon-separated (`aa:bb:cc:dd:ee:ff`).
 * Accepts `AA:BB:..`, `AA-BB-..`, `aabb.ccdd.eeff` (Cisco) and bare `aabbccddeeff`. Returns null otherwise.
 */
export function normalizeMac(input: string): string | null {
  const s = input.trim().toLowerCase();
  let hex: string;
  if (/^([0-9a-f]{1,2})([:-][0-9a-f]{1,2}){5}$/.test(s)) {
    const sep = s.includes(":") ? ":" : "-";
    if (s.includes(":") && s.includes("-")) return null;
    hex = s
      .split(sep)
      .map((p) => p.padStart(2, "0"))
      .join("");
  } else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(s)) {
    hex = s.replaceAll(".", "");
  } else {
    hex = s;
  }
  if (!MAC_HEX.test(hex)) return null;
  return hex.match(/../g)!.join(":");
}

/** Dotted-quad IPv4 without leading zeros (leading zeros are ambiguous: octal in some parsers). */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** RFC 1123 host name: labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen, 253 max. */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split(".").every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}
