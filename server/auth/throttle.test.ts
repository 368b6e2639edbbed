import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { createHarness, type Harness } from "../testing/harness";
import { LoginThrottle } from "./throttle";

// The counters live in the store: SQLite here, PostgreSQL in the vitest project `postgres` (RACKHAND_TEST_STORE).
let h: Harness;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

let n = 0;
/** Names unique to each test: the tests share one store. */
const fresh = (s: string) => `${s}-${++n}`;

describe("LoginThrottle", () => {
  it("locks a user name after 5 attempts without success, from any address, then lets it try again", async () => {
    let now = 1_000_000;
    const t = new LoginThrottle({ perUser: 5, perSource: 100, windowMs: 15 * 60_000, lockMs: 5 * 60_000 }, () => now);
    const admin = fresh("admin");
    const [ip1, ip2] = [fresh("10.0.0.1"), fresh("10.0.0.2")];
    for (let i = 0; i < 4; i++) await t.begin(h.store, ip1, admin);
    await t.begin(h.store, ip1, admin.toUpperCase());
    await expect(t.begin(h.store, ip1, admin)).rejects.toThrowError(AppError);
    // Another address gets no fresh budget for that name; another name from the same address is not affected.
    await expect(t.begin(h.store, ip2, admin)).rejects.toThrowError(/Too many failed sign-ins; try again in 300 s/);
    await t.begin(h.store, ip1, fresh("operator"));
    now += 5 * 60_000 + 1;
    await t.begin(h.store, ip1, admin);
  });

  it("counts an attempt before its password is checked: of 8 concurrent attempts, exactly 5 pass", async () => {
    const t = new LoginThrottle({ perUser: 5 });
    const u = fresh("u");
    const r = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => t.begin(h.store, `ip-${u}-${i}`, u)));
    expect(r.filter((x) => x.status === "fulfilled")).toHaveLength(5);
    for (const x of r.filter((x) => x.status === "rejected")) expect(x.reason).toMatchObject({ code: "RATE_LIMITED" });
  });

  it("locks one address trying many names", async () => {
    const t = new LoginThrottle({ perUser: 5, perSource: 20 });
    const ip = fresh("10.9.9.9");
    for (let i = 0; i < 20; i++) await t.begin(h.store, ip, fresh("user"));
    await expect(t.begin(h.store, ip, fresh("user"))).rejects.toThrowError(/Too many failed sign-ins/);
    await t.begin(h.store, fresh("10.9.9.8"), fresh("user"));
  });

  it("forgets failures older than the window and on success", async () => {
    let now = 0;
    const t = new LoginThrottle({ perUser: 3, perSource: 100, windowMs: 60_000, lockMs: 60_000 }, () => now);
    const [ip, u] = [fresh("ip"), fresh("u")];
    await t.begin(h.store, ip, u);
    await t.begin(h.store, ip, u);
    now = 61_000;
    await t.begin(h.store, ip, u);
    await t.begin(h.store, ip, u);
    await t.succeeded(h.store, ip, u);
    await t.begin(h.store, ip, u);
    await t.begin(h.store, ip, u);
    await t.begin(h.store, ip, u);
    await expect(t.begin(h.store, ip, u)).rejects.toThrowError(/Too many/);
  });

  it("is shared through the database: another process (another throttle on the same store) sees the lock, and a restart keeps it", async () => {
    const a = new LoginThrottle({ perUser: 3 });
    const b = new LoginThrottle({ perUser: 3 });
    const u = fresh("shared");
    await a.begin(h.store, "192.0.2.1", u);
    await b.begin(h.store, "192.0.2.2", u);
    await a.begin(h.store, "192.0.2.3", u);
    await expect(b.begin(h.store, "192.0.2.4", u)).rejects.toThrowError(/Too many failed sign-ins/);
    await expect(new LoginThrottle({ perUser: 3 }).begin(h.store, "192.0.2.5", u)).rejects.toThrowError(/Too many/);
  });

  it("keeps hostile names and addresses in their own counters (quotes, NUL, backslash, SQL, non-ASCII, over-long)", async () => {
    const t = new LoginThrottle({ perUser: 2, perSource: 1000 });
    const base = fresh("h");
    const hostile = [`${base}'; DROP TABLE login_throttle; --`, `${base}\u0000x`, `${base}\\`, `${base}"\n\r`, `${base}$(reboot)&;..`, `${base}Ünïcødé-用户`, base + "x".repeat(5000)];
    for (const name of hostile) {
      await t.begin(h.store, `${name}-ip`, name);
      await t.begin(h.store, `${name}-ip`, name);
      await expect(t.begin(h.store, "elsewhere", name)).rejects.toThrowError(/Too many/);
    }
    // The plain name was never tried: its counter is untouched by the hostile ones.
    await t.begin(h.store, "elsewhere", base);
    const rows = await h.store.db.select().from(h.store.t.loginThrottle);
    expect(rows.every((r) => r.key.length <= 300)).toBe(true);
    expect(rows.some((r) => r.key.includes("DROP TABLE"))).toBe(true);
  });

  it("prune drops lapsed windows that are not locked", async () => {
    let now = 10_000_000;
    const t = new LoginThrottle({ perUser: 1, perSource: 1000, windowMs: 1000, lockMs: 10_000 }, () => now);
    const [lapsed, locked] = [fresh("lapsed"), fresh("locked")];
    await t.begin(h.store, lapsed, fresh("n"));
    await t.begin(h.store, fresh("ip"), locked); // locks `locked` for 10 s
    now += 2000;
    await t.prune(h.store);
    const keys = (await h.store.db.select().from(h.store.t.loginThrottle)).map((r) => r.key);
    expect(keys.some((k) => k.includes(lapsed))).toBe(false);
    expect(keys.some((k) => k.includes(locked))).toBe(true);
  });
});

describe("auth.login throttling through the router", () => {
  it("answers TOO_MANY_REQUESTS after repeated wrong passwords, even with the right one and from another address", async () => {
    await h.addUser("olga", "operator", "olga-password-1");
    const anon = h.caller(null, undefined, "192.0.2.7");
    for (let i = 0; i < 5; i++) await expect(anon.auth.login({ name: "olga", password: "wrong" })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(anon.auth.login({ name: "olga", password: "olga-password-1" })).rejects.toMatchObject({
      code: "TOO_MANY_REQUESTS",
      message: expect.stringMatching(/Too many failed sign-ins/),
    });
    // Another address is refused too: the lock is on the name.
    await expect(h.caller(null, undefined, "192.0.2.8").auth.login({ name: "olga", password: "olga-password-1" })).rejects.toMatchObject({
      code: "TOO_MANY_REQUESTS",
    });
  });

  it("a name with a NUL is an unknown user, not a server error", async () => {
    await expect(h.caller(null, undefined, "192.0.2.9").auth.login({ name: "ol\u0000ga", password: "olga-password-1" })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });
});
