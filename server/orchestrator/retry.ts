/** A step failure and whether retrying may help. Handlers throw this; anything else counts as permanent. */
export class StepError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = "StepError";
  }
}

/**
 * The retry policy, in one place: exponential backoff from `baseMs` doubling per attempt up to `maxMs`,
 * with "full jitter" (uniform between half and all of it) so many machines failing together do not retry in lockstep.
 * `attempt` is the attempt that just failed (1 = first).
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export type StepOutcome = { ok: true; result?: Record<string, unknown> } | { ok: false; transient: boolean; message: string };

/** What happens to a step after an outcome: done, wait and retry, or fail for good. */
export function decide(
  outcome: StepOutcome,
  step: { attempt: number; maxAttempts: number; backoffBaseMs: number; backoffMaxMs: number },
  now: number,
  random?: () => number,
): { state: "succeeded" } | { state: "pending"; nextAttemptAt: number } | { state: "failed"; error: string } {
  if (outcome.ok) return { state: "succeeded" };
  if (outcome.transient && step.attempt < step.maxAttempts) {
    return { state: "pending", nextAttemptAt: now + backoffMs(step.attempt, step.backoffBaseMs, step.backoffMaxMs, random) };
  }
  const tries = step.attempt > 1 ? ` (after ${step.attempt} attempts)` : "";
  return { state: "failed", error: `${outcome.message}${tries}` };
}
