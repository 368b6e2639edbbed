/**
 * One operation at a time per BMC (BMCs reject or mangle concurrent sessions), with a minimum gap between
 * commands to the same BMC, and the OOB layer's retry of transient BMC failures (docs/ARCHITECTURE.md "Retries"). Instances are owned by the
 * process's OOB runtime; nothing here is module-level state.
 */
import { backoffDelay, sleep } from "../../lib/retry";
import { isTransient } from "./errors";

export class BmcScheduler {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly lastEnd = new Map<string, number>();

  /**
   * Exclusion across processes (several Rackhands on one PostgreSQL: withBmcLock in server/db/pg/leases.ts), taken
   * inside this process's turn for the BMC, around the call. Unset: this process is the only one.
   */
  crossProcess: (<T>(key: string, fn: () => Promise<T>) => Promise<T>) | undefined;

  constructor(private readonly opts: { spacingMs: number; attempts: number; backoffMs: number }) {}

  /** Run `fn` when every earlier operation on `key` has finished and the spacing has passed. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const run = prev.then(async () => {
      const wait = (this.lastEnd.get(key) ?? 0) + this.opts.spacingMs - Date.now();
      if (wait > 0) await sleep(wait);
      try {
        return await (this.crossProcess ? this.crossProcess(key, fn) : fn());
      } finally {
        this.lastEnd.set(key, Date.now());
      }
    });
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // Forget idle BMCs so the maps stay as large as the set of BMCs in use.
    void tail.then(() => {
      if (this.tails.get(key) === tail) {
        this.tails.delete(key);
        setTimeout(() => {
          if (!this.tails.has(key)) this.lastEnd.delete(key);
        }, this.opts.spacingMs).unref();
      }
    });
    return run;
  }

  /**
   * `exclusive`, retried with exponential backoff while the failure is classified transient. Other failures
   * (authentication, unsupported, bad parameters) are thrown at once. The BMC is free during the backoff.
   */
  async call<T>(key: string, fn: () => Promise<T>, attempts = this.opts.attempts): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.exclusive(key, fn);
      } catch (err) {
        if (!isTransient(err) || attempt >= attempts) throw err;
        await sleep(backoffDelay(attempt - 1, { baseMs: this.opts.backoffMs, maxMs: Infinity }));
      }
    }
  }
}
