/**
 * Retry timing shared by the server, the agent and the browser (isomorphic: no node:*): one backoff and one sleep.
 * Which layer retries what, how often, and why the total is bounded: docs/ARCHITECTURE.md "Retries".
 */

export interface Backoff {
  /** The first delay (after the first failure). */
  baseMs: number;
  /** The ceiling the doubling stops at. */
  maxMs: number;
  /**
   * "Full jitter" between half and all of the delay, so that many callers failing together (machines of a batch,
   * agents after a server restart) do not retry in lockstep.
   */
  jitter?: boolean;
}

/** The delay before retry `n` (0 = after the first failure): baseMs doubling per retry up to maxMs, optionally jittered. */
export function backoffDelay(n: number, b: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(Math.max(0, n), 30));
  return b.jitter ? Math.round(ceiling / 2 + random() * (ceiling / 2)) : ceiling;
}

/** Wait `ms`; an abort signal ends the wait early (resolves, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}
