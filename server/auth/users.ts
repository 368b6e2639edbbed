import { and, asc, count, eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { Role } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { storeOf, type Store } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import type { Logger } from "../log";
import { generatePassword, hashPassword, verifyPassword } from "./password";
import { endOtherSessions } from "./sessions";
import { forUpdate } from "../db/sql";

export async function listUsers(store: Store) {
  const { users } = store.t;
  const rows = await store.db
    .select({ id: users.id, name: users.name, role: users.role, disabled: users.disabled, createdAt: users.createdAt, lastLoginAt: users.lastLoginAt })
    .from(users)
    .orderBy(asc(users.name));
  return rows.map((u) => ({ ...u, createdAt: u.createdAt.getTime(), lastLoginAt: u.lastLoginAt?.getTime() ?? null }));
}

/** @throws AppError CONFLICT */
export async function createUser(d: Domain, input: { name: string; role: Role; password: string }, actor: Actor): Promise<{ id: number }> {
  const passwordHash = await hashPassword(input.password);
  const store = storeOf(d);
  const { users } = store.t;
  return store.transaction(async (tx) => {
    // The unique name index is the last guard (two processes creating the same name at once: one fails).
    const [u] = await tx
      .insert(users)
      .values({ name: input.name, role: input.role, passwordHash, createdAt: new Date() })
      .onConflictDoNothing({ target: users.name })
      .returning();
    if (!u) throw new AppError("CONFLICT", `User ${input.name} already exists`, [{ field: "name", message: "Name taken" }]);
    await recordStoreEvent(store, tx, { actor, kind: "user.created", message: `Created user ${u.name} (${u.role})` });
    return { id: u.id };
  });
}

/**
 * Change role, password or disabled flag. Refuses to leave the system without an enabled admin.
 * Disabling an account or changing its password ends its sessions.
 * @throws AppError USER_NOT_FOUND, CONFLICT
 */
export async function updateUser(
  d: Domain,
  input: { id: number; role?: Role; password?: string; disabled?: boolean },
  actor: Actor,
): Promise<void> {
  const passwordHash = input.password ? await hashPassword(input.password) : undefined;
  const store = storeOf(d);
  const { users, sessions } = store.t;
  const changed = await store.transaction(async (tx) => {
    // Lock the enabled admins (and the user) first: two processes disabling the last two admins at once must not
    // both see one left (PostgreSQL, READ COMMITTED). SQLite's BEGIN IMMEDIATE already serialises.
    await forUpdate(store.dialect, tx.select({ id: users.id }).from(users).where(eq(users.role, "admin")).orderBy(users.id));
    const [u] = await forUpdate(store.dialect, tx.select().from(users).where(eq(users.id, input.id)));
    if (!u) throw new AppError("USER_NOT_FOUND", `User ${input.id} does not exist`);
    const change = {
      ...(input.role && { role: input.role }),
      ...(passwordHash && { passwordHash }),
      ...(input.disabled !== undefined && { disabled: input.disabled }),
    };
    // An update naming nothing to change is a no-op (drizzle refuses an empty SET).
    if (Object.keys(change).length) await tx.update(users).set(change).where(eq(users.id, u.id));
    const [admins] = await tx
      .select({ n: count() })
      .from(users)
      .where(and(eq(users.role, "admin"), eq(users.disabled, false)));
    if (admins!.n === 0) throw new AppError("CONFLICT", "At least one enabled admin must remain");
    if (passwordHash || input.disabled) await tx.delete(sessions).where(eq(sessions.userId, u.id));
    const what = [input.role && `role ${input.role}`, passwordHash && "password", input.disabled !== undefined && (input.disabled ? "disabled" : "enabled")]
      .filter(Boolean)
      .join(", ");
    await recordStoreEvent(store, tx, { actor, kind: "user.updated", message: `Updated user ${u.name}: ${what || "no change"}` });
    return what !== "";
  });
  // Open sockets keep a session: the gateway drops them (sessions ended) or applies the new role.
  if (changed) d.bus.publish({ type: "user.access.changed", userId: input.id });
}

/**
 * A signed-in user changes their own password: the current one must be given. Every other session of the user
 * ends (the one making the change, `keepSession`, stays); their sockets are dropped by the gateway.
 * @throws AppError USER_NOT_FOUND, VALIDATION (wrong current password, same password), CONFLICT
 */
export async function changeOwnPassword(
  d: Domain,
  userId: number,
  input: { currentPassword: string; newPassword: string },
  keepSession: string | undefined,
  actor: Actor,
): Promise<{ endedSessions: number }> {
  const store = storeOf(d);
  const { users, sessions } = store.t;
  const [u] = await store.db.select().from(users).where(eq(users.id, userId)).limit(1);
  if (!u) throw new AppError("USER_NOT_FOUND", `User ${userId} does not exist`);
  if (!(await verifyPassword(input.currentPassword, u.passwordHash))) {
    throw new AppError("VALIDATION", "The current password is wrong", [{ field: "currentPassword", message: "Wrong password" }]);
  }
  if (input.newPassword === input.currentPassword) {
    throw new AppError("VALIDATION", "The new password is the same as the current one", [{ field: "newPassword", message: "Same as the current password" }]);
  }
  const passwordHash = await hashPassword(input.newPassword);
  const ended = await store.transaction(async (tx) => {
    // Re-read inside the transaction, locked: a concurrent change (admin reset) between the check and here wins.
    const [now] = await forUpdate(store.dialect, tx.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId)));
    if (!now || now.passwordHash !== u.passwordHash) throw new AppError("CONFLICT", "The password was changed meanwhile; try again");
    await tx.update(users).set({ passwordHash }).where(eq(users.id, userId));
    const sessionsOf = async () => (await tx.select({ n: count() }).from(sessions).where(eq(sessions.userId, userId)))[0]!.n;
    const before = await sessionsOf();
    await endOtherSessions(store, tx, userId, keepSession);
    const after = await sessionsOf();
    await recordStoreEvent(store, tx, { actor, kind: "user.password_changed", message: `${u.name} changed their password; ${before - after} other session(s) ended` });
    return before - after;
  });
  d.bus.publish({ type: "user.access.changed", userId });
  return { endedSessions: ended };
}

/**
 * First start: create `admin` when there are no users. The password is RACKHAND_ADMIN_PASSWORD, or generated and
 * printed once (to stdout, never to the log file or the database).
 */
export async function ensureAdmin(store: Store, log: Logger, password: string | undefined, print: (s: string) => void = console.log): Promise<void> {
  const { users } = store.t;
  const [{ n }] = (await store.db.select({ n: count() }).from(users)) as [{ n: number }];
  if (n > 0) return;
  const pw = password ?? generatePassword();
  // Several processes starting at once on one PostgreSQL: one creates the admin, the others find it there.
  const [made] = await store.db
    .insert(users)
    .values({ name: "admin", role: "admin", passwordHash: await hashPassword(pw), createdAt: new Date() })
    .onConflictDoNothing({ target: users.name })
    .returning({ id: users.id });
  if (!made) return;
  if (password) {
    log.info("created user admin with the password from RACKHAND_ADMIN_PASSWORD");
  } else {
    print(
      [
        "",
        "  ┌──────────────────────────────────────────────────────────────┐",
        "  │ First start: created user 'admin'. Password (shown once):    │",
        `  │   ${pw.padEnd(59)}│`,
        "  │ Change it under Users → Your password (click your name).     │",
        "  └──────────────────────────────────────────────────────────────┘",
        "",
      ].join("\n"),
    );
  }
}
