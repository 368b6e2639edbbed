import crypto from "node:crypto";
import { and, eq, gt, lt, ne, sql } from "drizzle-orm";
import type { SessionUser } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { Db } from "../db/client";
import { preparedFor } from "../db/prepared";
import { sessions, users } from "../db/schema";
import { hashPassword, verifyPassword } from "./password";

export const SESSION_COOKIE = "rh_session";

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

// Verify against a real hash when the user does not exist, so timing does not reveal which names exist.
let dummyHash: Promise<string> | undefined;

/**
 * Check a name and password and open a session. Returns the cookie value (shown once, stored hashed).
 * @throws AppError UNAUTHENTICATED (same message for unknown user, wrong password and disabled account)
 */
export async function login(db: Db, name: string, password: string, ttlMs: number): Promise<{ token: string; user: SessionUser; expiresAt: Date }> {
  const u = db.select().from(users).where(eq(users.name, name.toLowerCase())).get();
  dummyHash ??= hashPassword("not-a-real-password");
  const ok = await verifyPassword(password, u?.passwordHash ?? (await dummyHash));
  if (!u || !ok || u.disabled) throw new AppError("UNAUTHENTICATED", "Wrong user name or password");
  const token = crypto.randomBytes(32).toString("base64url");
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttlMs);
  db.transaction((tx) => {
    tx.insert(sessions).values({ idHash: sha256(token), userId: u.id, createdAt: now, expiresAt, lastSeenAt: now }).run();
    tx.update(users).set({ lastLoginAt: now }).where(eq(users.id, u.id)).run();
    // Housekeeping: expired sessions go when anyone logs in.
    tx.delete(sessions).where(lt(sessions.expiresAt, now)).run();
  });
  return { token, user: { id: u.id, name: u.name, role: u.role }, expiresAt };
}

/** The signed-in user for a cookie value, or null when absent, unknown, expired or disabled. */
export function sessionUser(db: Db, token: string | undefined): SessionUser | null {
  if (!token || token.length > 200) return null;
  // Every request runs this: prepared once per database (the expiry compared in ms, as the column stores it).
  const lookup = preparedFor(db, "sessions.user", () =>
    db
      .select({ id: users.id, name: users.name, role: users.role, disabled: users.disabled, lastSeenAt: sessions.lastSeenAt, idHash: sessions.idHash })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(and(eq(sessions.idHash, sql.placeholder("hash")), gt(sessions.expiresAt, sql.placeholder("now"))))
      .prepare(),
  );
  const row = lookup.get({ hash: sha256(token), now: Date.now() });
  if (!row || row.disabled) return null;
  // Record activity at most once a minute, not on every request.
  if (Date.now() - row.lastSeenAt.getTime() > 60_000) {
    db.update(sessions).set({ lastSeenAt: new Date() }).where(eq(sessions.idHash, row.idHash)).run();
  }
  return { id: row.id, name: row.name, role: row.role };
}

/** End every session of a user except the one with cookie value `keep` (none kept when undefined). */
export function endOtherSessions(db: Pick<Db, "delete">, userId: number, keep: string | undefined): void {
  db.delete(sessions)
    .where(keep ? and(eq(sessions.userId, userId), ne(sessions.idHash, sha256(keep))) : eq(sessions.userId, userId))
    .run();
}

export function logout(db: Db, token: string | undefined): void {
  if (token) db.delete(sessions).where(eq(sessions.idHash, sha256(token))).run();
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
