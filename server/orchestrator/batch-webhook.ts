/** The optional alert webhook: a JSON POST with a timeout and a few retries. It never throws. */
import { backoffDelay, sleep } from "../../lib/retry";

export interface WebhookOptions {
  /** Per attempt (ms). */
  timeoutMs: number;
  attempts: number;
  /** Wait before the second attempt (ms), doubling after each failure. */
  backoffMs: number;
}

export const DEFAULT_WEBHOOK: WebhookOptions = { timeoutMs: 5000, attempts: 3, backoffMs: 1000 };

export interface WebhookOutcome {
  ok: boolean;
  attempts: number;
  error: string | null;
}

/**
 * POST `body` as JSON to `url`. Any 2xx is delivery; other statuses, timeouts and network errors are retried.
 * `shouldStop` ends the retries early (the server is shutting down).
 */
export async function postWebhook(url: string, body: unknown, opts: WebhookOptions, shouldStop: () => boolean = () => false): Promise<WebhookOutcome> {
  let error = "not sent";
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "rackhand-batch-alert" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(opts.timeoutMs),
        redirect: "manual",
      });
      await res.body?.cancel();
      if (res.ok) return { ok: true, attempts: attempt, error: null };
      error = `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      error = e.name === "TimeoutError" ? `no answer within ${opts.timeoutMs} ms` : (e.cause?.code ?? e.message);
    }
    if (attempt === opts.attempts || shouldStop()) return { ok: false, attempts: attempt, error };
    await sleep(backoffDelay(attempt - 1, { baseMs: opts.backoffMs, maxMs: Infinity }));
  }
  return { ok: false, attempts: opts.attempts, error };
}
