/**
 * A step failure with its classification. Transient: retrying may help (network, a busy device, a timeout);
 * permanent: it will fail the same way again (bad checksum, missing device, bad spec). The server applies the
 * retry policy; the agent only says which kind it is.
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

// Node's system error codes that mean "try again later" rather than "this will never work".
const TRANSIENT_CODES = new Set([
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

/** Classify anything a step threw. Unknown errors are permanent: retrying the unknown hides bugs. */
export function classifyFailure(err: unknown): { transient: boolean; message: string } {
  if (err instanceof StepFailure) return { transient: err.transient, message: err.message };
  const e = err as NodeJS.ErrnoException | undefined;
  const message = (e instanceof Error ? e.message : String(err)).slice(0, 4000) || "unknown error";
  if (e?.code && TRANSIENT_CODES.has(e.code)) return { transient: true, message };
  return { transient: false, message };
}
