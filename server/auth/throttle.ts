import { and, inArray, isNull, lt, lte, or } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { forUpdate } from "../db/sql";
import type { Store, StoreTx } from "../db/store";

export interface ThrottleLimits {
  /** Failed sign-ins for one user name (from any address) before that name is locked. */
  perUser: number;
  /** Failed sign-ins from one client address (over any names) before that address is locked. */
  perSource: number;
  windowMs: number;
  lockMs: number;
}

const DEFAULTS: ThrottleLimits = { perUser: 5, perSource: 20, windowMs: 15 * 60_000, lockMs: 5 * 60_000 };

/** Keys longer than this are cut (a client address or a user name never is; the row key stays bounded). */
const MAX_KEY = 300;

/**
 * Slows password guessing. Every attempt is counted as a failure *before* its password is checked, and only a
 * success takes its count back. Two counters:
 * - per user name, whatever the address: `perUser` failures in `windowMs` lock that name for `lockMs`, so a
 *   second address gets no fresh budget (the price: anyone can lock a name out for `lockMs`);
 * - per client address, over all names: `perSource` failures lock the address (one password sprayed over many
 *   names).
 *
 * The counters live in the store's `login_throttle` table, so every process on one PostgreSQL shares them (picking
 * another process behind the load balancer gives no fresh budget) and a restart keeps them. Counting is one
 * transaction: the two rows are created if missing, locked (`FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on
 * SQLite), checked and written, so concurrent attempts cannot all pass the check.
 */
export class LoginThrottle {
  private readonly limits: ThrottleLimits;
  private calls = 0;

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
  async begin(store: Store, ip: string, name: string): Promise<void> {
    const t = this.now();
    const { loginThrottle: lt_ } = store.t;
    const keys = { user: userKey(name), source: sourceKey(ip) };
    const max = { user: this.limits.perUser, source: this.limits.perSource };
    const lockedUntil = await store.transaction(async (tx) => {
      const rows = await this.lockRows(store, tx, [keys.user, keys.source], t);
      const locked = Math.max(...rows.map((r) => r.lockedUntil?.getTime() ?? 0));
      if (locked > t) return locked;
      for (const which of ["user", "source"] as const) {
        const r = rows.find((x) => x.key === keys[which])!;
        const failures = r.failures + 1;
        await tx
          .update(lt_)
          .set({ failures, windowStart: r.windowStart, lockedUntil: failures >= max[which] ? new Date(t + this.limits.lockMs) : null })
          .where(inArray(lt_.key, [keys[which]]));
      }
      return 0;
    });
    if (lockedUntil > t) {
      const sec = Math.ceil((lockedUntil - t) / 1000);
      throw new AppError("RATE_LIMITED", `Too many failed sign-ins; try again in ${sec} s`);
    }
    if (++this.calls % 256 === 0) await this.prune(store, t);
  }

  /** The attempt counted by `begin` had the right password: the name starts afresh, the address gets its one back. */
  async succeeded(store: Store, ip: string, name: string): Promise<void> {
    const t = this.now();
    const { loginThrottle: lt_ } = store.t;
    await store.transaction(async (tx) => {
      // Both rows locked first, in key order as begin() locks them: the other order could deadlock with an attempt.
      const keys = [userKey(name), sourceKey(ip)].sort();
      const locked = await forUpdate(store.dialect, tx.select().from(lt_).where(inArray(lt_.key, keys)).orderBy(lt_.key));
      await tx.delete(lt_).where(inArray(lt_.key, [userKey(name)]));
      const s = locked.find((r) => r.key === sourceKey(ip));
      if (s && (s.lockedUntil?.getTime() ?? 0) <= t && s.failures > 0) {
        await tx.update(lt_).set({ failures: s.failures - 1 }).where(inArray(lt_.key, [s.key]));
      }
    });
  }

  /** Rows of lapsed windows that are not locked go (run every 256 attempts of this process). */
  async prune(store: Store, t = this.now()): Promise<void> {
    const { loginThrottle: lt_ } = store.t;
    await store.db
      .delete(lt_)
      .where(and(lt(lt_.windowStart, new Date(t - this.limits.windowMs)), or(isNull(lt_.lockedUntil), lte(lt_.lockedUntil, new Date(t)))));
  }

  /**
   * The rows of `keys`, created when missing and locked for the rest of the transaction (in key order, so two
   * attempts cannot deadlock). A row whose window lapsed and whose lock is over reads as fresh.
   */
  private async lockRows(store: Store, tx: StoreTx, keys: string[], t: number) {
    const { loginThrottle: lt_ } = store.t;
    const sorted = [...new Set(keys)].sort();
    await tx
      .insert(lt_)
      .values(sorted.map((key) => ({ key, failures: 0, windowStart: new Date(t), lockedUntil: null })))
      .onConflictDoNothing();
    const rows = await forUpdate(store.dialect, tx.select().from(lt_).where(inArray(lt_.key, sorted)).orderBy(lt_.key));
    return rows.map((r) => ((r.lockedUntil?.getTime() ?? 0) <= t && t - r.windowStart.getTime() > this.limits.windowMs ? { ...r, failures: 0, windowStart: new Date(t), lockedUntil: null } : r));
  }
}

// JSON-quoted: a NUL or any control character in a name becomes an escape (PostgreSQL text cannot hold NUL), and
// the prefix keeps names and addresses apart.
const cut = (s: string) => (s.length > MAX_KEY ? s.slice(0, MAX_KEY) : s);
const userKey = (name: string) => cut(`user:${JSON.stringify(name.toLowerCase())}`);
const sourceKey = (ip: string) => cut(`source:${JSON.stringify(ip)}`);
