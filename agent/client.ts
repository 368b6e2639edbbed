import { z, type ZodType } from "zod";
import { AGENT_API_PREFIX } from "../lib/agent-protocol";
import { backoffDelay, sleep } from "../lib/retry";

/** A non-2xx answer from the server. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const lookupResponse = z.object({
  machineId: z.number().int(),
  machineName: z.string(),
  jobId: z.number().int(),
  token: z.string().min(1),
  nextSeq: z.number().int().min(0).default(0),
});
export const heartbeatResponse = z.object({
  done: z.boolean(),
  jobState: z.string(),
  steps: z.array(
    z.object({
      id: z.number().int(),
      name: z.string(),
      attempt: z.number().int().min(1),
      timeoutS: z.number().positive(),
      params: z.record(z.string(), z.unknown()).default({}),
    }),
  ),
});
export type AgentStepMsg = z.infer<typeof heartbeatResponse>["steps"][number];

export { sleep };

/** Exponential backoff with jitter (lib/retry.ts): base 200 ms doubling per failure, between half and all of the ceiling. */
export function retryDelayMs(failures: number, maxMs: number): number {
  return backoffDelay(failures, { baseMs: 200, maxMs, jitter: true });
}

/** Whether a failed call may succeed if repeated: the network, a restarting server (5xx), throttling. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ApiError) return err.status >= 500 || err.status === 429 || err.status === 408;
  return true; // fetch failures: refused, reset, timed out, DNS
}

/**
 * The agent's side of the HTTP API: JSON POSTs with the job's bearer token; every answer is validated.
 * `call` retries network errors and 5xx forever with backoff (the server may be restarting); a 4xx is thrown
 * as ApiError for the caller to decide (401: the token was rotated or the job ended).
 */
export class ApiClient {
  token: string | null = null;

  constructor(
    private readonly api: string,
    private readonly retryMaxMs: number,
    private readonly note: (text: string) => void,
  ) {}

  async post<T>(path: string, body: unknown, schema: ZodType<T>, timeoutMs: number): Promise<T> {
    const res = await fetch(`${this.api}${AGENT_API_PREFIX}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(this.token && { authorization: `Bearer ${this.token}` }) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // A proxy's HTML error page: the status says enough.
    }
    if (!res.ok) {
      const msg = (json as { error?: unknown } | null)?.error;
      throw new ApiError(res.status, `${path}: HTTP ${res.status}${typeof msg === "string" ? `: ${msg}` : ""}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(502, `${path}: unexpected answer: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    return parsed.data;
  }

  /** POST until it succeeds or fails for good (any 4xx). */
  async call<T>(path: string, body: unknown, schema: ZodType<T>, timeoutMs = 30_000): Promise<T> {
    for (let failures = 0; ; failures++) {
      try {
        return await this.post(path, body, schema, timeoutMs);
      } catch (err) {
        if (!isRetryable(err)) throw err;
        const wait = retryDelayMs(failures, this.retryMaxMs);
        if (failures === 0 || failures % 10 === 0) this.note(`${path}: ${describe(err)}; retrying (${failures + 1}) in ${wait} ms`);
        await sleep(wait);
      }
    }
  }
}

export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${err.message} (${cause.code})` : err.message;
}
