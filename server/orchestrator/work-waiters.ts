/**
 * The agents' long-polls, per job: an agent asking for work waits until its job gets ready steps (or ends) or its
 * timeout passes. In memory, per process: a wake-up reaches the long-polls held by this process.
 */
export class WorkWaiters {
  private readonly waiters = new Map<number, Set<() => void>>();

  /** Resolves when `wake(jobId)` is called or `timeoutMs` passes. */
  wait(jobId: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(jobId) ?? new Set();
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
      this.waiters.set(jobId, set);
    });
  }

  wake(jobId: number): void {
    for (const w of [...(this.waiters.get(jobId) ?? [])]) w();
  }

  /** Release every long-poll (the process stops). */
  wakeAll(): void {
    for (const set of [...this.waiters.values()]) for (const wake of [...set]) wake();
  }
}
