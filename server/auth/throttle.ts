import { AppError } from "../../lib/errors";

interface Entry {
  failures: number;
  firstAt: number;
  lockedUntil: number;
}

export interface ThrottleLimits {
  /** Failed sign-ins for one user name (from any address) before that name is locked. */
  perUser: number;
  /** Failed sign-ins from one client address (over any names) before that address is locked. */
  perSource: number;
  windowMs: number;
  lockMs: number;
}

const DEFAULTS: ThrottleLimits = { perUser: 5, perSource: 20, windowMs: 15 * 60_000, lockMs: 5 * 60_000 };

/**
 * Slows password guessing. Every attempt is counted as a failure *before* its password is checked (synchronously,
 * so concurrent attempts cannot all pass the check), and only a success takes its count back. Two counters:
 * - per user name, whatever the address: `perUser` failures in `windowMs` lock that name for `lockMs`, so a
 *   second address gets no fresh budget (the price: anyone can lock a name out for `lockMs`);
 * - per client address, over all names: `perSource` failures lock the address (one password sprayed over many
 *   names).
 * In memory: a restart forgets, which is acceptable for a brake (the scrypt cost per attempt is the other one).
 */
export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly limits: ThrottleLimits;

  constructor(
    limits: Partial<ThrottleLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULTS, ...limits };
  }

  /**
   * Count one sign-in attempt; call before checking the password, then `succeeded` if it was right.
   * @throws AppError RATE_LIMITED while the name or the address is locked (the attempt is then not counted)
   */
  begin(ip: string, name: string): void {
    const t = this.now();
    const u = this.current(userKey(name), t);
    const s = this.current(sourceKey(ip), t);
    const locked = Math.max(u.lockedUntil, s.lockedUntil);
    if (locked > t) {
      const sec = Math.ceil((locked - t) / 1000);
      throw new AppError("RATE_LIMITED", `Too many failed sign-ins; try again in ${sec} s`);
    }
    this.count(u, this.limits.perUser, t);
    this.count(s, this.limits.perSource, t);
    if (this.entries.size > 10_000) this.prune(t);
  }

  /** The attempt counted by `begin` had the right password: the name starts afresh, the address gets its one back. */
  succeeded(ip: string, name: string): void {
    this.entries.delete(userKey(name));
    const s = this.entries.get(sourceKey(ip));
    if (s && s.lockedUntil <= this.now()) s.failures = Math.max(0, s.failures - 1);
  }

  private current(k: string, t: number): Entry {
    let e = this.entries.get(k);
    if (!e || (t - e.firstAt > this.limits.windowMs && e.lockedUntil <= t)) {
      e = { failures: 0, firstAt: t, lockedUntil: 0 };
      this.entries.set(k, e);
    }
    return e;
  }

  private count(e: Entry, max: number, t: number): void {
    e.failures++;
    if (e.failures >= max) e.lockedUntil = t + this.limits.lockMs;
  }

  private prune(t: number): void {
    for (const [k, e] of this.entries) if (t - e.firstAt > this.limits.windowMs && e.lockedUntil < t) this.entries.delete(k);
  }
}

const userKey = (name: string) => `u\u0000${name.toLowerCase()}`;
const sourceKey = (ip: string) => `s\u0000${ip}`;
