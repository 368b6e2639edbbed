import crypto from "node:crypto";
import { and, eq, gt, lt, ne, sql } from "drizzle-orm";
import type { SessionUser } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import { hot } from "../db/hot";
import type { Store, StoreDb, StoreTx } from "../db/store";
import { hashPassword, verifyPassword } from "./password";

export const SESSION_COOKIE = "rh_session";

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

// Verify against a real hash when the user does not exist, so timing does not reveal which names exist.
let dummyHash: Promise<string> | undefined;

/**
 * Check a name and password and open a session. Returns the cookie value (shown once, stored hashed).
 * @throws AppError UNAUTHENTICATED (same message for unknown user, wrong password and disabled account)
 */
export async function login(store: Store, name: string, password: string, ttlMs: number): Promise<{ token: string; user: SessionUser; expiresAt: Date }> {
  const { users, sessions } = store.t;
  // A NUL cannot be in any name (and PostgreSQL text refuses it): such a name is simply unknown.
  const [u] = name.includes("\u0000") ? [] : await store.db.select().from(users).where(eq(users.name, name.toLowerCase())).limit(1);
  dummyHash ??= hashPassword("not-a-real-password");
  const ok = await verifyPassword(password, u?.passwordHash ?? (await dummyHash));
  if (!u || !ok || u.disabled) throw new AppError("UNAUTHENTICATED", "Wrong user name or password");
  const token = crypto.randomBytes(32).toString("base64url");
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttlMs);
  await store.transaction(async (tx) => {
    await tx.insert(sessions).values({ idHash: sha256(token), userId: u.id, createdAt: now, expiresAt, lastSeenAt: now });
    await tx.update(users).set({ lastLoginAt: now }).where(eq(users.id, u.id));
    // Housekeeping: expired sessions go when anyone logs in.
    await tx.delete(sessions).where(lt(sessions.expiresAt, now));
  });
  return { token, user: { id: u.id, name: u.name, role: u.role }, expiresAt };
}

/** The signed-in user for a cookie value, or null when absent, unknown, expired or disabled. */
export async function sessionUser(store: Store, token: string | undefined): Promise<SessionUser | null> {
  if (!token || token.length > 200) return null;
  const now = Date.now();
  const row = await lookupOf(store)(store.db, { hash: sha256(token), now: store.dialect === "postgres" ? new Date(now) : now });
  if (!row || row.disabled) return null;
  // Record activity at most once a minute, not on every request.
  if (now - row.lastSeenAt.getTime() > 60_000) {
    const { sessions } = store.t;
    await store.db.update(sessions).set({ lastSeenAt: new Date() }).where(eq(sessions.idHash, row.idHash));
  }
  return { id: row.id, name: row.name, role: row.role };
}

interface SessionRow {
  id: number;
  name: string;
  role: SessionUser["role"];
  disabled: boolean;
  lastSeenAt: Date;
  idHash: string;
}
type Lookup = (db: StoreDb, params: { hash: string; now: number | Date }) => Promise<SessionRow | undefined>;
const lookups = new WeakMap<Store, Lookup>();

/**
 * Every request's session lookup, prepared once per Store on SQLite (building drizzle's SQL each time was ~13 % of
 * an enrollment's CPU and ~6 % of a list page's); `hot` keeps the Store's rule that a query waits for an open
 * transaction. `now` is the driver's value of a timestamp (epoch ms on SQLite, a Date on PostgreSQL).
 */
function lookupOf(store: Store): Lookup {
  let q = lookups.get(store);
  if (!q) {
    q = hot<SessionRow | undefined>(store, "get", (db, { users, sessions }) =>
      db
        .select({ id: users.id, name: users.name, role: users.role, disabled: users.disabled, lastSeenAt: sessions.lastSeenAt, idHash: sessions.idHash })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .where(and(eq(sessions.idHash, sql.placeholder("hash")), gt(sessions.expiresAt, sql`${sql.placeholder("now")}`)))
        .limit(1),
    );
    lookups.set(store, q);
  }
  return q;
}

/** End every session of a user except the one with cookie value `keep` (none kept when undefined). */
export async function endOtherSessions(store: Store, db: StoreDb | StoreTx, userId: number, keep: string | undefined): Promise<void> {
  const { sessions } = store.t;
  await db.delete(sessions).where(keep ? and(eq(sessions.userId, userId), ne(sessions.idHash, sha256(keep))) : eq(sessions.userId, userId));
}

export async function logout(store: Store, token: string | undefined): Promise<void> {
  const { sessions } = store.t;
  if (token) await store.db.delete(sessions).where(eq(sessions.idHash, sha256(token)));
}

/** Parse a Cookie header into name → value. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

export function sessionCookie(token: string, expiresAt: Date, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${token}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Lax",
    `Expires=${expiresAt.toUTCString()}`,
    secure ? "Secure" : "",
  ]
    .filter(Boolean)
    .join("; ");
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure ? "; Secure" : ""}`;
}
