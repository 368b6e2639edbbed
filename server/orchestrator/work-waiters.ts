/**
 * The agents' long-polls, per job: an agent asking for work waits until its job gets ready steps (or ends) or its
 * timeout passes. In memory, per process: a wake-up reaches the long-polls held by this process.
 */
export class WorkWaiters {
  private readonly waiters = new Map<number, Set<() => void>>();
  /** The last wake of each job (a number of this process's wake sequence); cleared beyond 10,000 jobs. */
  private readonly woken = new Map<number, number>();
  private seq = 0;

  /**
   * A mark to hand to `wait`: taken before looking for work, it makes a wake that comes between the look and the
   * wait count. Without it a long-poll that found nothing, then waited, slept through the wake-up that came while it
   * was still reading (the database answers asynchronously) until its timeout: in bench:deploy on PostgreSQL the
   * first agent step's dispatch p95 was ~20 s.
   */
  mark(jobId: number): number {
    return this.woken.get(jobId) ?? 0;
  }

  /** Resolves when `wake(jobId)` is called or `timeoutMs` passes; at once when the job was woken since `since`. */
  wait(jobId: number, timeoutMs: number, since?: number): Promise<void> {
    // A cleared entry reads as a change: at worst a spurious wake-up, never a lost one.
    if (since !== undefined && this.mark(jobId) !== since) return Promise.resolve();
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
    if (this.woken.size >= 10_000) this.woken.clear();
    this.woken.set(jobId, ++this.seq);
    for (const w of [...(this.waiters.get(jobId) ?? [])]) w();
  }

  /** Release every long-poll (the process stops). */
  wakeAll(): void {
    for (const set of [...this.waiters.values()]) for (const wake of [...set]) wake();
  }
}
