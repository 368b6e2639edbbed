import crypto from "node:crypto";
import { and, asc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import type { SessionUser } from "../../lib/dto";
import { AppError } from "../../lib/errors";
import type { Actor } from "../context";
import type { TokenScope } from "../db/schema";
import type { Store } from "../db/store";
import { forUpdate } from "../db/sql";
import { recordStoreEvent } from "../events/audit";

/**
 * API tokens for scripts and the CLI. A token is `rh_` + 32 random bytes (base64url); only its sha256 is stored,
 * so the secret is shown once at creation. A token acts as its owner with the owner's *current* role (a role
 * change or a disabled account applies at once), or read-only: queries only, never a mutation, and a viewer on
 * sockets. Presented as `Authorization: Bearer <token>` on /api/trpc and in the socket.io handshake
 * (`auth: { token }` or the same header).
 */
export const TOKEN_PREFIX = "rh_";
export const TOKEN_SCOPES = ["read", "role"] as const satisfies readonly TokenScope[];
const MAX_DAYS = 366;

export const tokenCreateSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, "Give the token a name")
    .max(64, "At most 64 characters")
    .regex(/^[\p{L}\p{N} ._:@/-]+$/u, "Letters, digits, space and . _ : @ / - only"),
  scope: z.enum(TOKEN_SCOPES),
  expiresInDays: z.number().int().min(1).max(MAX_DAYS),
});
export const tokenListSchema = z.object({ all: z.boolean().optional() }).optional();
export const tokenRevokeSchema = z.object({ id: z.number().int().positive() });

export const tokenDtoSchema = z.object({
  id: z.number(),
  userId: z.number(),
  userName: z.string(),
  name: z.string(),
  scope: z.enum(TOKEN_SCOPES),
  prefix: z.string(),
  createdAt: z.number(),
  expiresAt: z.number(),
  lastUsedAt: z.number().nullable(),
  revokedAt: z.number().nullable(),
});
export type TokenDto = z.infer<typeof tokenDtoSchema>;

/** What a valid bearer token resolves to. */
export interface TokenActor {
  user: SessionUser;
  readOnly: boolean;
  tokenId: number;
}

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

/** Create a token for `user`. Returns the secret (shown once) and its listing. */
export async function createToken(store: Store, user: SessionUser, input: z.infer<typeof tokenCreateSchema>, actor: Actor): Promise<{ token: string; info: TokenDto }> {
  const { users, apiTokens } = store.t;
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString("base64url");
  const now = new Date();
  const expiresAt = new Date(now.getTime() + input.expiresInDays * 86_400_000);
  const id = await store.transaction(async (tx) => {
    // Locked (PostgreSQL): the owner cannot be deleted between this check and the insert.
    const [owner] = await forUpdate(store.dialect, tx.select({ id: users.id }).from(users).where(eq(users.id, user.id)));
    if (!owner) throw new AppError("USER_NOT_FOUND", `User ${user.id} does not exist`);
    const [row] = await tx
      .insert(apiTokens)
      .values({ userId: user.id, name: input.name, scope: input.scope, tokenHash: sha256(token), prefix: token.slice(0, 10), createdAt: now, expiresAt })
      .returning({ id: apiTokens.id });
    await recordStoreEvent(store, tx, { actor, kind: "token.created", message: `Created API token "${input.name}" (${input.scope === "read" ? "read-only" : "role"}) for ${user.name}` });
    return row!.id;
  });
  return { token, info: (await listTokens(store, { userId: user.id })).find((t) => t.id === id)! };
}

/** Tokens of one user, or of everyone when `userId` is absent (admins). Newest last. */
export async function listTokens(store: Store, opts: { userId?: number }): Promise<TokenDto[]> {
  const { users, apiTokens } = store.t;
  const rows = await store.db
    .select({
      id: apiTokens.id,
      userId: apiTokens.userId,
      userName: users.name,
      name: apiTokens.name,
      scope: apiTokens.scope,
      prefix: apiTokens.prefix,
      createdAt: apiTokens.createdAt,
      expiresAt: apiTokens.expiresAt,
      lastUsedAt: apiTokens.lastUsedAt,
      revokedAt: apiTokens.revokedAt,
    })
    .from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(opts.userId === undefined ? undefined : eq(apiTokens.userId, opts.userId))
    .orderBy(asc(apiTokens.id));
  return rows.map((t) => ({
      ...t,
      createdAt: t.createdAt.getTime(),
      expiresAt: t.expiresAt.getTime(),
      lastUsedAt: t.lastUsedAt?.getTime() ?? null,
      revokedAt: t.revokedAt?.getTime() ?? null,
    }));
}

/**
 * Revoke a token: its owner may, and an admin may revoke anyone's. Revoking twice is a no-op.
 * @throws AppError NOT_FOUND (also for someone else's token when not an admin, so ids do not leak)
 */
export async function revokeToken(store: Store, by: SessionUser, id: number, actor: Actor): Promise<void> {
  const { apiTokens } = store.t;
  await store.transaction(async (tx) => {
    const [t] = await forUpdate(store.dialect, tx.select().from(apiTokens).where(eq(apiTokens.id, id)));
    if (!t || (t.userId !== by.id && by.role !== "admin")) throw new AppError("NOT_FOUND", `Token ${id} does not exist`);
    if (t.revokedAt) return;
    await tx.update(apiTokens).set({ revokedAt: new Date() }).where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)));
    await recordStoreEvent(store, tx, { actor, kind: "token.revoked", message: `Revoked API token "${t.name}" (${t.prefix}…)` });
  });
}

/** The bearer token of an `Authorization` header, or null when there is none (or it is not a Bearer header). */
export function bearerOf(header: string | string[] | undefined): string | null {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m ? m[1]! : null;
}

/** The owner of a valid token, or null when unknown, malformed, expired, revoked or its owner is disabled. */
export async function tokenUser(store: Store, token: string | null | undefined): Promise<TokenActor | null> {
  if (!token || token.length > 200 || !token.startsWith(TOKEN_PREFIX)) return null;
  const { users, apiTokens } = store.t;
  const [row] = await store.db
    .select({
      tokenId: apiTokens.id,
      scope: apiTokens.scope,
      expiresAt: apiTokens.expiresAt,
      revokedAt: apiTokens.revokedAt,
      lastUsedAt: apiTokens.lastUsedAt,
      id: users.id,
      name: users.name,
      role: users.role,
      disabled: users.disabled,
    })
    .from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(eq(apiTokens.tokenHash, sha256(token)))
    .limit(1);
  if (!row || row.disabled || row.revokedAt || row.expiresAt.getTime() <= Date.now()) return null;
  // Record use at most once a minute, not on every request.
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
    await store.db.update(apiTokens).set({ lastUsedAt: new Date() }).where(eq(apiTokens.id, row.tokenId));
  }
  return { user: { id: row.id, name: row.name, role: row.role }, readOnly: row.scope === "read", tokenId: row.tokenId };
}

/**
 * The socket.io user of a token: read-only tokens are viewers there (they may watch rooms, never take a console
 * or type into it).
 */
export async function tokenSocketUser(store: Store, token: string | null | undefined): Promise<SessionUser | null> {
  const t = await tokenUser(store, token);
  if (!t) return null;
  return t.readOnly ? { ...t.user, role: "viewer" } : t.user;
}

/**
 * The token a socket.io handshake presents: `auth: { token }` or an Authorization: Bearer header. undefined when
 * it presents none (then the session cookie decides); null when it presents a malformed one.
 */
export function handshakeToken(h: { auth?: unknown; headers: { authorization?: string | string[] } }): string | null | undefined {
  const a = h.auth as { token?: unknown } | undefined;
  if (a && typeof a === "object" && a.token !== undefined) return typeof a.token === "string" ? a.token : null;
  if (h.headers.authorization !== undefined) return bearerOf(h.headers.authorization);
  return undefined;
}
