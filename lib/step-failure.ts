/**
 * A step's failure, shared by the server's step handlers and the agent's steps (isomorphic). Transient: retrying
 * may help (network, a busy or unreachable BMC, a timeout); permanent: it will fail the same way again (bad
 * checksum, missing device, bad spec). The server's step retry policy (server/orchestrator/retry.ts) decides what
 * happens next; the runner only says which kind it is.
 */
export class StepFailure extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = "StepFailure";
  }
}

export const transient = (message: string) => new StepFailure(message, true);
export const permanent = (message: string) => new StepFailure(message, false);

/**
 * The one list of error codes that mean "try again later": Rackhand's own (lib/errors.ts AppError codes: a BMC that
 * does not answer now may answer in a minute; BMC_ERROR, an unclassified BMC failure, is not among them) and the
 * system's (Node errno / undici codes the agent meets).
 */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "BMC_UNREACHABLE",
  "POWER_STATE_UNKNOWN",
  "MACHINE_BUSY",
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "EBUSY",
  "EAGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "ABORT_ERR",
]);

/**
 * Classify anything a step threw: a StepFailure says so itself; an error with a code from TRANSIENT_CODES is
 * transient; anything else is permanent (retrying the unknown hides bugs).
 */
export function classifyFailure(err: unknown): { transient: boolean; message: string } {
  if (err instanceof StepFailure) return { transient: err.transient, message: err.message };
  const code = (err as { code?: unknown } | null | undefined)?.code;
  const message = (err instanceof Error ? err.message : String(err)).slice(0, 4000) || "unknown error";
  return { transient: typeof code === "string" && TRANSIENT_CODES.has(code), message };
}
