/**
 * The background promises of a long-lived service (orchestrator.ts, batch-runner.ts): each is kept until it settles,
 * its failure goes to `onError` and never into the event loop, and `settle()` waits for all of them (on stop).
 */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly onError: (err: unknown) => void) {}

  track(p: Promise<unknown>): Promise<void> {
    const q = p.then(
      () => undefined,
      (err: unknown) => this.onError(err),
    );
    this.pending.add(q);
    void q.finally(() => this.pending.delete(q));
    return q;
  }

  /** Resolves once nothing is in flight, including what was added while waiting. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
