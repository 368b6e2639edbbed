import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import type { Role } from "../../../lib/schemas";

export const users = sqliteTable("users", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  role: text("role").$type<Role>().notNull(),
  /** scrypt$N$r$p$salt$hash, see server/auth/password.ts */
  passwordHash: text("password_hash").notNull(),
  disabled: integer("disabled", { mode: "boolean" }).notNull().default(false),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  lastLoginAt: integer("last_login_at", { mode: "timestamp_ms" }),
});
export type User = typeof users.$inferSelect;

export const sessions = sqliteTable(
  "sessions",
  {
    /** sha256 of the cookie value: a stolen database does not yield live sessions. */
    idHash: text("id_hash").primaryKey(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
    lastSeenAt: integer("last_seen_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("sessions_user").on(t.userId), index("sessions_expires").on(t.expiresAt)],
);

/** Small key/value settings store (later issues keep network and sync settings here). */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value", { mode: "json" }).notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});

/** Scope of an API token: "read" can only run queries; "role" acts with the owner's current role. */
export type TokenScope = "read" | "role";

/** API tokens for automation (server/auth/tokens.ts): shown once, stored as sha256, revocable, expiring. */
export const apiTokens = sqliteTable(
  "api_tokens",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    scope: text("scope").$type<TokenScope>().notNull(),
    /** sha256 (hex) of the whole token; the token itself is never stored. */
    tokenHash: text("token_hash").notNull().unique(),
    /** The first characters of the token, to recognise it in a list. */
    prefix: text("prefix").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
    lastUsedAt: integer("last_used_at", { mode: "timestamp_ms" }),
    revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
  },
  (t) => [index("api_tokens_user").on(t.userId)],
);
export type ApiToken = typeof apiTokens.$inferSelect;

/**
 * Failed sign-in counters shared by every process on the store (server/auth/throttle.ts): one row per key (a user
 * name or a client address), counting failures in the window that started at `window_start`, and locked while
 * `locked_until` is in the future. Rows of lapsed windows are pruned.
 */
export const loginThrottle = sqliteTable("login_throttle", {
  key: text("key").primaryKey(),
  failures: integer("failures").notNull().default(0),
  windowStart: integer("window_start", { mode: "timestamp_ms" }).notNull(),
  lockedUntil: integer("locked_until", { mode: "timestamp_ms" }),
});
