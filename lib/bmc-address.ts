/**
 * Checks of what a BMC is reached by, shared by the enrollment form, the CSV import and the server (isomorphic):
 * its address (IPv4, IPv6 or a host name) and IPMI's credential limits, so that enrollment refuses what would fail
 * only later at "Check BMC".
 */
import { isHostname, isIPv4 } from "./net";

/** IPMI 2.0 (RMCP+) passwords are at most 20 bytes; ipmitool refuses longer ones. */
export const IPMI_PASSWORD_MAX_BYTES = 20;
/** IPMI user names are at most 16 bytes. */
export const IPMI_USERNAME_MAX_BYTES = 16;

/** Bytes of `s` in UTF-8. */
export function utf8Bytes(s: string): number {
  // Enrollment checks two of these per BMC: one encoder, and no encoding at all for ASCII text.
  return /^[\x00-\x7f]*$/.test(s) ? s.length : encoder.encode(s).length;
}
const encoder = new TextEncoder();

/**
 * An IPv6 address in text form (RFC 4291 §2.2: eight groups of 1-4 hex digits, one "::" for a run of zero groups,
 * an IPv4 tail in the last 32 bits). No zone index (`%eth0`) and no brackets.
 */
export function isIPv6(s: string): boolean {
  if (s.length < 2 || s.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groups = (part: string): string[] | null => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return false;
  const all = [...head, ...tail];
  let count = all.length;
  const last = all[all.length - 1];
  if (last?.includes(".")) {
    if (!isIPv4(last)) return false;
    count += 1; // an IPv4 tail fills two groups
    all.pop();
  }
  if (!all.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** Why `address` cannot be a BMC address (null when it is an IPv4 or IPv6 address or a host name). */
export function bmcAddressProblem(address: string): string | null {
  const a = address.trim();
  if (!a) return "BMC address is required";
  if (a.length > 253) return "BMC address is longer than 253 characters";
  if (isIPv4(a) || isIPv6(a)) return null;
  // All-digit dotted labels read as an IPv4 address everywhere (ipmitool, resolvers): 10.43.1.999 is a typo, not a name.
  if (/^[0-9.]+$/.test(a)) return `"${a}" is not an IPv4 address (four numbers 0-255, no leading zeros)`;
  if (a.includes(":")) return `"${a}" is not an IPv6 address`;
  if (!isHostname(a)) return `"${a}" is not an IPv4 or IPv6 address or a host name`;
  if (/(^|\.)[0-9]+$/.test(a)) return `"${a}" ends in an all-digit label: not a host name`;
  return null;
}

/** Why `password` cannot be an IPMI password (null when it can). */
export function ipmiPasswordProblem(password: string): string | null {
  const n = utf8Bytes(password);
  if (n > IPMI_PASSWORD_MAX_BYTES) return `IPMI passwords are at most ${IPMI_PASSWORD_MAX_BYTES} bytes; this one is ${n} bytes (UTF-8)`;
  // It reaches ipmitool through the environment, which cannot carry NUL; other control characters are typos.
  if (/\p{Cc}/u.test(password)) return "The BMC password contains a control character (newline, tab, NUL …)";
  return null;
}

/** Why `username` cannot be an IPMI user name (null when it can). */
export function ipmiUsernameProblem(username: string): string | null {
  const n = utf8Bytes(username);
  if (n > IPMI_USERNAME_MAX_BYTES) return `IPMI user names are at most ${IPMI_USERNAME_MAX_BYTES} bytes; this one is ${n} bytes (UTF-8)`;
  if (/\p{Cc}/u.test(username)) return "The BMC user contains a control character (newline, tab, NUL …)";
  return null;
}
