/** Classifying ipmitool failures: only transient ones are retried (Ironic `_exec_ipmitool` retryable list). */
import { AppError, type ErrorCode } from "../../lib/errors";
import { TRANSIENT_CODES } from "../../lib/step-failure";

export type FailureKind = "transient" | "auth" | "unsupported" | "other";

// Checked in this order: a bad password also prints "Unable to establish ... session", so auth comes first.
const AUTH = [/HMAC is invalid/i, /unauthorized name/i, /invalid authentication/i, /Invalid user name/i, /unauthorized role or privilege/i, /privilege level exceeds/i];
const TRANSIENT = [
  /Unable to establish IPMI v2 \/ RMCP\+ session/i,
  /Unable to establish LAN session/i,
  /insufficient resources/i,
  /node busy/i,
  /timed? ?out/i,
  /No response from remote controller/i,
];
const UNSUPPORTED = [/failed: (Invalid command|Invalid data field in request|Unspecified error|Command not supported|Parameter not supported)/i, /not supported/i];

/** Lines ipmitool -v prints on every call; they say nothing about a failure. */
const NOISE = [/^Loading IANA PEN Registry/, /^Running Get VSO/, /^Invalid completion code received: Invalid command/, /^Discovered IPMB/, /^Get HPM\.x/, /^tcgetattr/, /^>/];

export function meaningfulLines(output: string): string[] {
  return output
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !NOISE.some((re) => re.test(l)));
}

export function classifyFailure(output: string): FailureKind {
  if (AUTH.some((re) => re.test(output))) return "auth";
  const lines = meaningfulLines(output).join("\n");
  if (TRANSIENT.some((re) => re.test(lines))) return "transient";
  if (UNSUPPORTED.some((re) => re.test(lines))) return "unsupported";
  return "other";
}

const CODES: Record<FailureKind, ErrorCode> = {
  transient: "BMC_UNREACHABLE",
  auth: "BMC_AUTH_FAILED",
  unsupported: "BMC_UNSUPPORTED",
  other: "BMC_ERROR",
};

/** An AppError for a failed BMC call, remembering whether a retry may help. */
export class BmcError extends AppError {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(CODES[kind], message);
  }
}

/** A BMC failure the OOB scheduler retries: its code is in the one transient list (lib/step-failure.ts). */
export function isTransient(err: unknown): boolean {
  return err instanceof BmcError && TRANSIENT_CODES.has(err.code);
}
