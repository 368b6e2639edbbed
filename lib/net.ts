/** Network value parsing shared by forms, CSV import and the server. */

const MAC_HEX = /^[0-9a-f]{12}$/;
const MAC_CANONICAL = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/**
 * Canonical MAC form: lower-case, colon-separated (`aa:bb:cc:dd:ee:ff`).
 * Accepts `AA:BB:..`, `AA-BB-..`, `aabb.ccdd.eeff` (Cisco) and bare `aabbccddeeff`. Returns null otherwise.
 */
export function normalizeMac(input: string): string | null {
  const s = input.trim().toLowerCase();
  // Already canonical (what the API, bulk enrollment and the database carry): nothing to rebuild.
  if (MAC_CANONICAL.test(s)) return s;
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

/**
 * Why dnsmasq would not read `name` as a host name in a dhcp-host line (`mac,ip,name`), or null. Its dhcp-host
 * parser takes a field as a keyword or value before a name: "ignore" (never answer this host), "infinite" and a
 * lease time (digits with an optional s/m/h/d/w suffix, e.g. 90m, 12h, 3600), an IPv4 address (all-digit labels),
 * and id:/set:/tag:/net: prefixes and MAC-like fields (a ':' — not possible in a host name). An all-digit last
 * label is also not a host name (RFC 1123 §2.1, RFC 3696 §2).
 */
export function dnsmasqNameProblem(name: string): string | null {
  const n = name.toLowerCase();
  if (["ignore", "infinite", "deleted"].includes(n)) return `"${name}" is a dnsmasq keyword`;
  if (/^[0-9]+[smhdw]?$/.test(n)) return `"${name}" reads as a lease time or number`;
  if (/(^|\.)[0-9]+$/.test(n)) return `"${name}" ends in an all-digit label (reads as an address)`;
  if (/[:*,#\s]/.test(n)) return `"${name}" contains a character dnsmasq treats specially`;
  return null;
}

/** Why `host.domain` is not a usable fully qualified name (over 253 characters or a label over 63), or null. */
export function fqdnProblem(host: string, domain: string | null): string | null {
  const fqdn = domain ? `${host}.${domain}` : host;
  if (fqdn.length > 253) return `${fqdn.slice(0, 40)}… is ${fqdn.length} characters as a fully qualified name (at most 253)`;
  if (fqdn.split(".").some((l) => l.length === 0 || l.length > 63)) return `"${fqdn}" has an empty label or one over 63 characters`;
  return null;
}

/** RFC 1123 host name: labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen, 253 max. */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split(".").every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}
