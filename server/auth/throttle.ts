import { AppError } from "../../lib/errors";

interface Entry {
  failures: number;
  firstAt: number;
  lockedUntil: number;
}

/**
 * Slows password guessing: after `maxFailures` failed sign-ins for one (client address, user name) within
 * `windowMs`, that pair is refused for `lockMs`. In memory: a restart forgets, which is acceptable for a
 * brake (the scrypt cost per attempt is the other one).
 */
export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxFailures = 5,
    private readonly windowMs = 15 * 60_000,
    private readonly lockMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** @throws AppError RATE_LIMITED while the pair is locked */
  check(ip: string, name: string): void {
    const e = this.entries.get(key(ip, name));
    if (e && e.lockedUntil > this.now()) {
      const s = Math.ceil((e.lockedUntil - this.now()) / 1000);
      throw new AppError("RATE_LIMITED", `Too many failed sign-ins; try again in ${s} s`);
    }
  }

  failed(ip: string, name: string): void {
    const k = key(ip, name);
    const t = this.now();
    let e = this.entries.get(k);
    if (!e || t - e.firstAt > this.windowMs) e = { failures: 0, firstAt: t, lockedUntil: 0 };
    e.failures++;
    if (e.failures >= this.maxFailures) e.lockedUntil = t + this.lockMs;
    this.entries.set(k, e);
    if (this.entries.size > 10_000) this.prune(t);
  }

  succeeded(ip: string, name: string): void {
    this.entries.delete(key(ip, name));
  }

  private prune(t: number): void {
    for (const [k, e] of this.entries) if (t - e.firstAt > this.windowMs && e.lockedUntil < t) this.entries.delete(k);
  }
}

const key = (ip: string, name: string) => `${ip}\u0000${name.toLowerCase()}`;
