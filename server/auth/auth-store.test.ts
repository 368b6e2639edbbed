/**
 * API tokens and first-start admin through the harness store: SQLite in the `sqlite` project, PostgreSQL in the
 * `postgres` one (server/auth/tokens.int.test.ts covers the HTTP and socket side on SQLite).
 */
import crypto from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../log";
import { createHarness, testStoreKind, type Harness } from "../testing/harness";
import { expectTrpcError } from "../testing/fixtures";
import { login, sessionUser } from "./sessions";
import { tokenSocketUser, tokenUser } from "./tokens";
import { ensureAdmin } from "./users";

let h: Harness;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

describe("API tokens on the store", () => {
  it("runs on the store the project asks for", () => {
    expect(h.store.dialect).toBe(testStoreKind());
  });

  it("create → resolve → list → revoke, stored hashed, with an audit event each", async () => {
    const kim = await h.addUser("kim", "operator", "kim-password-1");
    const me = h.caller({ id: kim.id, name: "kim", role: "operator" }, "session-of-kim");
    const made = await me.tokens.create({ name: "ci: deploy/1 @rack", scope: "role", expiresInDays: 30 });
    expect(made.token).toMatch(/^rh_/);
    expect(await tokenUser(h.store, made.token)).toMatchObject({ user: { id: kim.id, role: "operator" }, readOnly: false });
    const ro = await me.tokens.create({ name: "read", scope: "read", expiresInDays: 1 });
    expect(await tokenSocketUser(h.store, ro.token)).toMatchObject({ id: kim.id, role: "viewer" });
    const list = await me.tokens.list();
    expect(list.map((t) => t.name)).toEqual(["ci: deploy/1 @rack", "read"]);
    expect(JSON.stringify(await h.store.db.select().from(h.store.t.apiTokens))).not.toContain(made.token);
    await me.tokens.revoke({ id: made.info.id });
    await me.tokens.revoke({ id: made.info.id }); // twice is a no-op
    expect(await tokenUser(h.store, made.token)).toBeNull();
    const { events } = h.store.t;
    const kinds = (await h.store.db.select({ kind: events.kind }).from(events)).map((e) => e.kind);
    expect(kinds.filter((k) => k === "token.created")).toHaveLength(2);
    expect(kinds.filter((k) => k === "token.revoked")).toHaveLength(1);
    // Someone else's token is "not found" for a non-admin.
    const other = await h.addUser("lou", "viewer", "lou-password-1");
    await expectTrpcError(h.caller({ id: other.id, name: "lou", role: "viewer" }, "s").tokens.revoke({ id: ro.info.id }), "NOT_FOUND");
  });

  it("a disabled owner's token stops working at once; malformed tokens resolve to nobody", async () => {
    const max = await h.addUser("max", "operator", "max-password-1");
    const { token } = await h.caller({ id: max.id, name: "max", role: "operator" }, "s").tokens.create({ name: "t", scope: "role", expiresInDays: 1 });
    await h.store.db.update(h.store.t.users).set({ disabled: true }).where(eq(h.store.t.users.id, max.id));
    expect(await tokenUser(h.store, token)).toBeNull();
    for (const bad of [null, undefined, "", "rh_", "rh_\u0000", `rh_${"x".repeat(500)}`, "rh_' OR 1=1 --", "Bearer x"]) {
      expect(await tokenUser(h.store, bad)).toBeNull();
    }
  });
});

describe("ensureAdmin on the store", () => {
  it("several processes starting at once create one admin, and only its creator prints a password", async () => {
    const fresh = createHarness();
    try {
      const printed: string[] = [];
      await Promise.all([1, 2, 3].map(() => ensureAdmin(fresh.store, silentLogger, undefined, (s) => printed.push(s))));
      const admins = await fresh.store.db.select().from(fresh.store.t.users);
      expect(admins.map((u) => u.name)).toEqual(["admin"]);
      expect(printed).toHaveLength(1);
      const pw = /│\s+(\S{20})\s*│/.exec(printed[0]!)?.[1];
      expect(await fresh.anonymous.auth.login({ name: "admin", password: pw! })).toMatchObject({ role: "admin" });
    } finally {
      fresh.close();
    }
  });
});

describe("sessions on the store", () => {
  it("a cookie finds its user until the session expires; unknown, over-long and disabled ones find nobody", async () => {
    await h.addUser("sue", "viewer", "sue-password-1");
    const { token, user } = await login(h.store, "sue", "sue-password-1", 60_000);
    expect(await sessionUser(h.store, token)).toEqual(user);
    expect(await sessionUser(h.store, `${token}x`)).toBeNull();
    expect(await sessionUser(h.store, "x".repeat(201))).toBeNull();
    expect(await sessionUser(h.store, undefined)).toBeNull();
    const { sessions, users } = h.store.t;
    const hash = crypto.createHash("sha256").update(token).digest("hex");
    // Activity is recorded at most once a minute: a session last seen 2 minutes ago is touched by the lookup.
    const old = new Date(Date.now() - 120_000);
    await h.store.db.update(sessions).set({ lastSeenAt: old }).where(eq(sessions.idHash, hash));
    await sessionUser(h.store, token);
    const [seen] = await h.store.db.select().from(sessions).where(eq(sessions.idHash, hash));
    expect(seen!.lastSeenAt.getTime()).toBeGreaterThan(old.getTime() + 60_000);
    // Expired a second ago: gone, on the same prepared lookup.
    await h.store.db.update(sessions).set({ expiresAt: new Date(Date.now() - 1_000) }).where(eq(sessions.idHash, hash));
    expect(await sessionUser(h.store, token)).toBeNull();
    await h.store.db.update(sessions).set({ expiresAt: new Date(Date.now() + 60_000) }).where(eq(sessions.idHash, hash));
    expect(await sessionUser(h.store, token)).toEqual(user);
    await h.store.db.update(users).set({ disabled: true }).where(eq(users.id, user.id));
    expect(await sessionUser(h.store, token)).toBeNull();
  });
});
