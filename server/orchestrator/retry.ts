import { backoffDelay } from "../../lib/retry";

/**
 * The step layer's retry policy: exponential backoff from `baseMs` doubling per attempt up to `maxMs`, with jitter
 * (lib/retry.ts), so many machines failing together do not retry in lockstep. `attempt` is the attempt that just
 * failed (1 = first).
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return backoffDelay(attempt - 1, { baseMs, maxMs, jitter: true }, random);
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
