/** Sign-in, sessions and their expiry, user management, the last admin, and the first admin at start-up. */
import { count, eq, lt } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { SessionUser } from "../../../lib/dto";
import { verifyPassword } from "../../auth/password";
import { SESSION_COOKIE, sessionUser } from "../../auth/sessions";
import { ensureAdmin } from "../../auth/users";
import type { Logger } from "../../log";
import { expectTrpcError } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

function tokenFrom(cookie: string): string {
  const m = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(cookie);
  if (!m) throw new Error(`not a session cookie: ${cookie}`);
  return m[1]!;
}

describe("login, sessions and users", () => {
  let h: Harness;
  beforeAll(async () => {
    h = createHarness();
    await h.addUser("root", "admin", "root-password-1");
    await h.addUser("alice", "operator", "alice-password-1");
    await h.addUser("bob", "viewer", "bob-password-12");
  });
  afterAll(() => {
    vi.useRealTimers();
    h.close();
  });

  async function login(name: string, password: string): Promise<{ token: string; cookie: string; user: SessionUser }> {
    const before = h.cookies.length;
    const user = await h.anonymous.auth.login({ name, password });
    expect(h.cookies.length).toBe(before + 1);
    const cookie = h.cookies.at(-1)!;
    return { token: tokenFrom(cookie), cookie, user };
  }
  const sessionsOf = async (userId: number) => (await h.store.db.select({ n: count() }).from(h.store.t.sessions).where(eq(h.store.t.sessions.userId, userId)))[0]!.n;
  const userNamed = async (name: string) => (await h.store.db.select().from(h.store.t.users).where(eq(h.store.t.users.name, name)))[0];

  it("login sets an HttpOnly, SameSite=Lax session cookie and opens a session", async () => {
    const { token, cookie, user } = await login("alice", "alice-password-1");
    expect(user).toMatchObject({ name: "alice", role: "operator" });
    const attrs = cookie.split(";").map((s) => s.trim());
    expect(attrs).toContain("HttpOnly");
    expect(attrs).toContain("SameSite=Lax");
    expect(attrs).toContain("Path=/");
    expect(attrs).not.toContain("Secure");
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(await sessionUser(h.store, token)).toEqual(user);
    // Stored hashed: the cookie value is not in the database.
    expect(JSON.stringify(await h.store.db.select().from(h.store.t.sessions))).not.toContain(token);
    // A caller built from that session acts as alice.
    expect(await h.caller(await sessionUser(h.store, token), token).auth.me()).toEqual(user);
    expect((await userNamed("alice"))!.lastLoginAt).not.toBeNull();
  });

  it("accepts the user name in any case", async () => {
    expect((await login("ALICE", "alice-password-1")).user.name).toBe("alice");
  });

  it("marks the cookie Secure when configured", async () => {
    const secure = createHarness({ config: { secureCookies: true } });
    try {
      await secure.addUser("sec", "viewer", "sec-password-1");
      await secure.anonymous.auth.login({ name: "sec", password: "sec-password-1" });
      expect(secure.cookies.at(-1)!.split(";").map((s) => s.trim())).toContain("Secure");
    } finally {
      secure.close();
    }
  });

  it("gives the same UNAUTHORIZED message for a wrong password, an unknown user and a disabled account", async () => {
    const cookies = h.cookies.length;
    const wrong = await expectTrpcError(h.anonymous.auth.login({ name: "alice", password: "not-her-password" }), "UNAUTHORIZED");
    const unknown = await expectTrpcError(h.anonymous.auth.login({ name: "mallory", password: "whatever-pass" }), "UNAUTHORIZED");
    const dis = await h.addUser("dora", "viewer", "dora-password-1");
    await h.admin.users.update({ id: dis.id, disabled: true });
    const disabled = await expectTrpcError(h.anonymous.auth.login({ name: "dora", password: "dora-password-1" }), "UNAUTHORIZED");
    expect(wrong.shape.message).toBe(unknown.shape.message);
    expect(disabled.shape.message).toBe(unknown.shape.message);
    expect(wrong.shape.message).not.toMatch(/mallory|alice|exist/i);
    expect(h.cookies.length).toBe(cookies);
  });

  it("logout ends the session and clears the cookie", async () => {
    const { token, user } = await login("bob", "bob-password-12");
    await h.caller(user, token).auth.logout();
    expect(await sessionUser(h.store, token)).toBeNull();
    expect(h.cookies.at(-1)).toMatch(new RegExp(`^${SESSION_COOKIE}=;.*Max-Age=0`));
  });

  it("ignores unknown and absurd tokens", async () => {
    expect(await sessionUser(h.store, undefined)).toBeNull();
    expect(await sessionUser(h.store, "nope")).toBeNull();
    expect(await sessionUser(h.store, "x".repeat(10_000))).toBeNull();
  });

  describe("expiry", () => {
    afterEach(() => vi.useRealTimers());

    it("a session is valid until its TTL, then not; expired rows are swept at the next login", async () => {
      const ttl = h.config.sessionTtlMs;
      const { token, user } = await login("bob", "bob-password-12");
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.now() + ttl - 60_000);
      expect(await sessionUser(h.store, token)).toEqual(user);
      vi.setSystemTime(Date.now() + 120_000);
      expect(await sessionUser(h.store, token)).toBeNull();
      await expectTrpcError(h.caller(await sessionUser(h.store, token), token).machines.summary(), "UNAUTHORIZED");
      const { sessions: st } = h.store.t;
      const expired = async () => (await h.store.db.select({ n: count() }).from(st).where(lt(st.expiresAt, new Date())))[0]!.n;
      expect(await expired()).toBeGreaterThanOrEqual(1);
      const fresh = await login("alice", "alice-password-1");
      expect(await expired()).toBe(0);
      expect(await sessionUser(h.store, fresh.token)).toMatchObject({ name: "alice" });
      expect(await sessionUser(h.store, token)).toBeNull();
    });
  });

  it("disabling a user ends their sessions; enabling lets them sign in again", async () => {
    const eve = await h.addUser("eve", "operator", "eve-password-1");
    const a = await login("eve", "eve-password-1");
    const b = await login("eve", "eve-password-1");
    expect(await sessionsOf(eve.id)).toBe(2);
    await h.admin.users.update({ id: eve.id, disabled: true });
    expect(await sessionsOf(eve.id)).toBe(0);
    expect(await sessionUser(h.store, a.token)).toBeNull();
    expect(await sessionUser(h.store, b.token)).toBeNull();
    await expectTrpcError(h.anonymous.auth.login({ name: "eve", password: "eve-password-1" }), "UNAUTHORIZED");
    await h.admin.users.update({ id: eve.id, disabled: false });
    expect((await login("eve", "eve-password-1")).user.name).toBe("eve");
  });

  it("a disabled user's surviving session row is not honoured", async () => {
    const fay = await h.addUser("fay", "viewer", "fay-password-1");
    const { token } = await login("fay", "fay-password-1");
    // Even if a session row were left behind, the disabled flag wins.
    await h.store.db.update(h.store.t.users).set({ disabled: true }).where(eq(h.store.t.users.id, fay.id));
    expect(await sessionUser(h.store, token)).toBeNull();
  });

  it("changing a password ends sessions; the new password works and the old does not", async () => {
    const gil = await h.addUser("gil", "viewer", "gil-password-1");
    const { token } = await login("gil", "gil-password-1");
    await h.admin.users.update({ id: gil.id, password: "gil-password-2" });
    expect(await sessionUser(h.store, token)).toBeNull();
    await expectTrpcError(h.anonymous.auth.login({ name: "gil", password: "gil-password-1" }), "UNAUTHORIZED");
    await login("gil", "gil-password-2");
  });

  it("auth.changePassword needs the current password, keeps this session and ends the user's others", async () => {
    const ida = await h.addUser("ida", "viewer", "ida-password-1");
    const here = await login("ida", "ida-password-1");
    const other1 = await login("ida", "ida-password-1");
    const other2 = await login("ida", "ida-password-1");
    const bystander = await login("bob", "bob-password-12");
    const me = h.caller(await sessionUser(h.store, here.token), here.token);
    const wrong = await expectTrpcError(me.auth.changePassword({ currentPassword: "not-ida-password", newPassword: "ida-password-2" }), "BAD_REQUEST");
    expect(wrong.error.message).toMatch(/current password is wrong/);
    expect(await sessionUser(h.store, other1.token)).not.toBeNull();
    await expectTrpcError(me.auth.changePassword({ currentPassword: "ida-password-1", newPassword: "ida-password-1" }), "BAD_REQUEST");
    await expectTrpcError(me.auth.changePassword({ currentPassword: "ida-password-1", newPassword: "short" }), "BAD_REQUEST");
    const published = h.published.length;
    expect(await me.auth.changePassword({ currentPassword: "ida-password-1", newPassword: "ida-password-2" })).toEqual({ endedSessions: 2 });
    expect(await sessionUser(h.store, here.token)).toMatchObject({ id: ida.id });
    expect(await sessionUser(h.store, other1.token)).toBeNull();
    expect(await sessionUser(h.store, other2.token)).toBeNull();
    expect(await sessionUser(h.store, bystander.token)).toMatchObject({ name: "bob" });
    expect(h.published.slice(published)).toContainEqual({ type: "user.access.changed", userId: ida.id });
    await expectTrpcError(h.anonymous.auth.login({ name: "ida", password: "ida-password-1" }), "UNAUTHORIZED");
    await login("ida", "ida-password-2");
    const ev = (await h.store.db.select().from(h.store.t.events).where(eq(h.store.t.events.kind, "user.password_changed"))).at(-1)!;
    expect(ev).toMatchObject({ actor: "user:ida" });
    expect(ev.message).not.toContain("ida-password");
  });

  it("auth.changePassword refuses an API token (even a role token) and hostile input is only a wrong password", async () => {
    const jo = await h.addUser("jo", "operator", "jo-password-12");
    const viaToken = h.caller({ id: jo.id, name: "jo", role: "operator" }, undefined, "127.0.0.1", { id: 99, readOnly: false });
    await expectTrpcError(viaToken.auth.changePassword({ currentPassword: "jo-password-12", newPassword: "jo-password-13" }), "FORBIDDEN");
    const { token } = await login("jo", "jo-password-12");
    const me = h.caller(await sessionUser(h.store, token), token, "127.0.0.9");
    for (const bad of ["x\n", "' OR 1=1 --", "$(reboot)", "a\u0000b", "ü".repeat(300)]) {
      await expectTrpcError(me.auth.changePassword({ currentPassword: bad, newPassword: "jo-password-14" }), "BAD_REQUEST");
    }
    // Hostile characters are fine in a new password: it is only ever hashed.
    const hostile = "p'\"; $(x) & ..\\\n\r\u0000ü";
    await me.auth.changePassword({ currentPassword: "jo-password-12", newPassword: hostile });
    expect(await verifyPassword(hostile, (await userNamed("jo"))!.passwordHash)).toBe(true);
  });

  it("a role change applies to the open session at once", async () => {
    const hal = await h.addUser("hal", "viewer", "hal-password-1");
    const { token } = await login("hal", "hal-password-1");
    await expectTrpcError(h.caller(await sessionUser(h.store, token), token).racks.create({ name: "hal-rack" }), "FORBIDDEN");
    await h.admin.users.update({ id: hal.id, role: "operator" });
    await h.caller(await sessionUser(h.store, token), token).racks.create({ name: "hal-rack" });
  });

  describe("users.*", () => {
    it("admin lists users without password hashes", async () => {
      const list = await h.admin.users.list();
      expect(list.map((u) => u.name)).toContain("alice");
      expect(list.find((u) => u.name === "alice")).toMatchObject({ role: "operator", disabled: false });
      expect(JSON.stringify(list)).not.toMatch(/scrypt|passwordHash/);
    });

    it("admin creates users (hashed password), refuses duplicates and weak input", async () => {
      const { id } = await h.admin.users.create({ name: "ivan", role: "viewer", password: "ivan-password-1" });
      const row = (await h.store.db.select().from(h.store.t.users).where(eq(h.store.t.users.id, id)))[0]!;
      expect(row.passwordHash).not.toContain("ivan-password-1");
      expect(await verifyPassword("ivan-password-1", row.passwordHash)).toBe(true);
      await expectTrpcError(h.admin.users.create({ name: "ivan", role: "viewer", password: "ivan-password-1" }), "CONFLICT");
      await expectTrpcError(h.admin.users.create({ name: "Ivan2", role: "viewer", password: "ivan-password-1" }), "BAD_REQUEST");
      await expectTrpcError(h.admin.users.create({ name: "ivan3", role: "viewer", password: "short" }), "BAD_REQUEST");
      await expectTrpcError(h.admin.users.update({ id: 99999, role: "viewer" }), "NOT_FOUND", "USER_NOT_FOUND");
    });
  });
});

describe("the last admin", () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
  });
  afterEach(() => h.close());

  const userRow = async (id: number) => (await h.store.db.select().from(h.store.t.users).where(eq(h.store.t.users.id, id)))[0]!;

  it("cannot be demoted or disabled", async () => {
    const root = await h.addUser("root", "admin", "root-password-1");
    await h.addUser("olga", "operator", "olga-password-1");
    const demote = await expectTrpcError(h.admin.users.update({ id: root.id, role: "operator" }), "CONFLICT", "CONFLICT");
    expect(demote.shape.message).toMatch(/admin/);
    await expectTrpcError(h.admin.users.update({ id: root.id, disabled: true }), "CONFLICT");
    expect(await userRow(root.id)).toMatchObject({ role: "admin", disabled: false });
  });

  it("can be demoted once another enabled admin exists, which then is the last", async () => {
    const root = await h.addUser("root", "admin", "root-password-1");
    const ada = await h.addUser("ada", "admin", "ada-password-12");
    await h.admin.users.update({ id: root.id, role: "viewer" });
    expect((await userRow(root.id)).role).toBe("viewer");
    await expectTrpcError(h.admin.users.update({ id: ada.id, disabled: true }), "CONFLICT");
    expect((await userRow(ada.id)).disabled).toBe(false);
  });

  it("a disabled admin does not count", async () => {
    const root = await h.addUser("root", "admin", "root-password-1");
    const ada = await h.addUser("ada", "admin", "ada-password-12");
    await h.admin.users.update({ id: ada.id, disabled: true });
    await expectTrpcError(h.admin.users.update({ id: root.id, role: "operator" }), "CONFLICT");
    expect((await userRow(root.id)).role).toBe("admin");
  });
});

describe("ensureAdmin", () => {
  let h: Harness;
  let printed: string[];
  let logged: string[];
  const log: Logger = {
    debug: (m, f) => logged.push(m + JSON.stringify(f ?? {})),
    info: (m, f) => logged.push(m + JSON.stringify(f ?? {})),
    warn: (m, f) => logged.push(m + JSON.stringify(f ?? {})),
    error: (m, f) => logged.push(m + JSON.stringify(f ?? {})),
    child: () => log,
  };
  const print = (s: string) => printed.push(s);
  beforeEach(() => {
    h = createHarness();
    printed = [];
    logged = [];
  });
  afterEach(() => h.close());

  it("uses RACKHAND_ADMIN_PASSWORD when set, printing nothing", async () => {
    await ensureAdmin(h.store, log, "env-admin-password", print);
    expect(printed).toEqual([]);
    expect(logged.join("\n")).not.toContain("env-admin-password");
    const u = await h.anonymous.auth.login({ name: "admin", password: "env-admin-password" });
    expect(u).toMatchObject({ name: "admin", role: "admin" });
  });

  it("generates a password, prints it once (not to the log), and never again", async () => {
    await ensureAdmin(h.store, log, undefined, print);
    expect(printed).toHaveLength(1);
    const pw = /│\s+(\S{20})\s*│/.exec(printed[0]!)?.[1];
    expect(pw).toBeDefined();
    expect(logged.join("\n")).not.toContain(pw!);
    expect(JSON.stringify(await h.store.db.select().from(h.store.t.users))).not.toContain(pw!);
    expect(await h.anonymous.auth.login({ name: "admin", password: pw! })).toMatchObject({ role: "admin" });

    // A restart: nothing printed, nothing changed, even if an env password appears now.
    await ensureAdmin(h.store, log, undefined, print);
    await ensureAdmin(h.store, log, "later-env-password", print);
    expect(printed).toHaveLength(1);
    expect((await h.store.db.select({ n: count() }).from(h.store.t.users))[0]!.n).toBe(1);
    await expectTrpcError(h.anonymous.auth.login({ name: "admin", password: "later-env-password" }), "UNAUTHORIZED");
    await h.anonymous.auth.login({ name: "admin", password: pw! });
  });

  it("generates a different password each first start", async () => {
    await ensureAdmin(h.store, log, undefined, print);
    const other = createHarness();
    try {
      await ensureAdmin(other.store, log, undefined, print);
    } finally {
      other.close();
    }
    const [a, b] = printed.map((p) => /│\s+(\S{20})\s*│/.exec(p)?.[1]);
    expect(a).toBeDefined();
    expect(a).not.toBe(b);
  });

  it("does nothing when users exist", async () => {
    await h.addUser("someone", "viewer", "someone-password");
    await ensureAdmin(h.store, log, undefined, print);
    expect(printed).toEqual([]);
    expect(await h.store.db.select().from(h.store.t.users).where(eq(h.store.t.users.name, "admin"))).toEqual([]);
  });
});
