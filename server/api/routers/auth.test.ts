import { count, eq, lt } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { SessionUser } from "../../../lib/dto";
import type { Role } from "../../../lib/schemas";
import { hashPassword, verifyPassword } from "../../auth/password";
import { SESSION_COOKIE, sessionUser } from "../../auth/sessions";
import { ensureAdmin } from "../../auth/users";
import { batches, bmcs, events, machines, nics, racks } from "../../db/schema";
import type { Logger } from "../../log";
import { transition } from "../../machines/lifecycle";
import { startPowerAction } from "../../operator/hand-power";
import { READ_ONLY_MUTATIONS } from "../access";
import { startJob } from "../../orchestrator/job-state";
import { expectTrpcError, machineInput, procedureAt, procedures } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";

const PUBLIC_MUTATIONS = ["auth.login", "auth.logout"];
const MUTATIONS = procedures()
  .filter((p) => p.type === "mutation" && !PUBLIC_MUTATIONS.includes(p.path))
  .map((p) => p.path);
const QUERIES = procedures()
  .filter((p) => p.type === "query")
  .map((p) => p.path);
/** The least role each procedure needs: user management is admin-only, the rest is operator (mutations) or viewer. */
const ADMIN_ONLY = ["oob.updateSyncSettings", "netboot.settings", "netboot.saveSettings", "batches.settings", "batches.saveSettings", "subnets.create", "subnets.update", "subnets.delete"];
/** Mutations every signed-in user may make (on their own things): API tokens. */
const VIEWER_MUTATIONS = ["tokens.create", "tokens.revoke", "auth.changePassword"];
const minRole = (path: string): Role =>
  path.startsWith("users.") || ADMIN_ONLY.includes(path)
    ? "admin"
    : MUTATIONS.includes(path) && !VIEWER_MUTATIONS.includes(path)
      ? "operator"
      : "viewer";

function tokenFrom(cookie: string): string {
  const m = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(cookie);
  if (!m) throw new Error(`not a session cookie: ${cookie}`);
  return m[1]!;
}

describe("roles on every procedure", () => {
  let h: Harness;
  let powerOp = "";
  const fx = { rackA: 0, rackDel: 0, m1: 0, m2: 0, m3: 0, mDel: 0, mBmc: 0, userId: 0, profA: 0, profDel: 0, job: 0, mJob: 0, mBatch: 0, bPaused: 0, bRunning: 0, token: 0, subnet: 0, subnetDel: 0 };
  let m1Network: unknown = null;
  const imageProfile = (name: string) => ({ name, kind: "image" as const, imageUrl: "http://images.example/a.raw.gz", imageSha256: "a".repeat(64), imageFormat: "raw.gz" as const });
  /** A valid input for every mutation, so a refusal can only come from the role check. */
  const mutationInputs: Record<string, () => unknown> = {
    "racks.create": () => ({ name: "auth-new-rack" }),
    "racks.update": () => ({ id: fx.rackA, site: "moved" }),
    "racks.delete": () => ({ id: fx.rackDel }),
    "machines.enroll": () => machineInput(900),
    "machines.importCsv": () => ({ csv: "name,mac\nauth-csv,52:54:00:0a:0a:0a" }),
    "machines.bulkEnroll": () => ({ machines: [{ name: "auth-bulk", bootMac: "52:54:00:0a:0a:0b" }] }),
    "machines.update": () => ({ id: fx.m1, ip: "10.1.2.3" }),
    "machines.delete": () => ({ id: fx.mDel }),
    "machines.action": () => ({ id: fx.m2, action: "manage" }),
    "machines.bulkAction": () => ({ selection: { ids: [fx.m3] }, action: "manage" }),
    "machines.plan": () => ({ selection: { ids: [fx.m3] }, op: { type: "action", action: "manage" } }),
    "machines.setOsProfile": () => ({ selection: { ids: [fx.m1] }, osProfileId: fx.profA }),
    "machines.setMaintenance": () => ({ id: fx.m1, on: true, reason: "x" }),
    "machines.setNetwork": () => ({ id: fx.m1, network: m1Network }),
    "subnets.create": () => ({ name: "auth-subnet-new", cidr: "10.201.0.0/24" }),
    "subnets.update": () => ({ id: fx.subnet, name: "auth-subnet-a2", cidr: "10.202.0.0/24" }),
    "subnets.delete": () => ({ id: fx.subnetDel }),
    "oob.power": () => ({ selection: { ids: [fx.mBmc] }, action: "on" }),
    "oob.bootDevice": () => ({ id: fx.mBmc, device: "pxe" }),
    "oob.checkBmc": () => ({ id: fx.mBmc }),
    "oob.powerStart": () => ({ selection: { ids: [fx.mBmc] }, action: "on" }),
    "oob.powerWait": () => ({ operationId: powerOp, timeoutMs: 5000 }),
    "oob.syncNow": () => undefined,
    "oob.updateSyncSettings": () => ({ intervalS: 30 }),
    "users.create": () => ({ name: "newbie", role: "viewer", password: "long-enough-pw" }),
    "users.update": () => ({ id: fx.userId, role: "operator" }),
    "osProfiles.create": () => imageProfile("auth-new-profile"),
    "osProfiles.update": () => ({ id: fx.profA, ...imageProfile("auth-prof-a2") }),
    "osProfiles.delete": () => ({ id: fx.profDel }),
    "netboot.saveSettings": () => ({ mode: "off" }),
    "jobs.cancel": () => ({ jobId: fx.job }),
    "batches.create": () => ({ selection: { ids: [fx.mBatch] }, kind: "inspect" }),
    "batches.resume": () => ({ id: fx.bPaused }),
    "batches.abort": () => ({ id: fx.bRunning }),
    "batches.saveSettings": () => ({ webhookUrl: "http://127.0.0.1:9/hook" }),
    "tokens.create": () => ({ name: "auth-token", scope: "read", expiresInDays: 7 }),
    "tokens.revoke": () => ({ id: fx.token }),
    "auth.changePassword": () => ({ currentPassword: "operator-password-1", newPassword: "operator-password-2" }),
  };
  const queryInputs: Record<string, () => unknown> = {
    "auth.me": () => undefined,
    "racks.list": () => undefined,
    "racks.elevations": () => undefined,
    "machines.list": () => ({}),
    "machines.listFields": () => ({ fields: ["name"] }),
    "machines.count": () => ({}),
    "machines.summary": () => undefined,
    "machines.get": () => ({ id: fx.m1 }),
    "machines.network": () => ({ id: fx.m1 }),
    "subnets.list": () => undefined,
    "subnets.get": () => ({ id: fx.subnet }),
    "events.list": () => ({}),
    "events.facets": () => undefined,
    "users.list": () => undefined,
    "oob.syncSettings": () => undefined,
    "oob.syncStatus": () => undefined,
    "osProfiles.list": () => undefined,
    "netboot.settings": () => undefined,
    "netboot.status": () => undefined,
    "jobs.forMachine": () => ({ machineId: fx.mJob }),
    "jobs.logs": () => ({ jobId: fx.job }),
    "jobs.get": () => ({ jobId: fx.job }),
    "batches.list": () => ({}),
    "batches.get": () => ({ id: fx.bPaused }),
    "batches.alerts": () => undefined,
    "batches.settings": () => undefined,
    "tokens.list": () => undefined,
  };
  // The auth slice lives in h.store (PostgreSQL in the `postgres` project), the rest in h.db.
  const snapshot = async () => ({
    ...Object.fromEntries(Object.entries({ machines, racks, events, nics, bmcs }).map(([k, t]) => [k, h.db.select({ n: count() }).from(t).get()!.n])),
    ...Object.fromEntries(
      await Promise.all(
        (["users", "sessions", "events", "apiTokens"] as const).map(async (k) => [`store.${k}`, (await h.store.db.select({ n: count() }).from(h.store.t[k]))[0]!.n] as const),
      ),
    ),
  });

  beforeAll(async () => {
    h = createHarness();
    fx.rackA = (await h.operator.racks.create({ name: "auth-a" })).id;
    fx.rackDel = (await h.operator.racks.create({ name: "auth-del" })).id;
    fx.profA = (await h.operator.osProfiles.create(imageProfile("auth-prof-a"))).id;
    fx.profDel = (await h.operator.osProfiles.create(imageProfile("auth-prof-del"))).id;
    fx.m1 = (await h.operator.machines.enroll(machineInput(1))).id;
    fx.m2 = (await h.operator.machines.enroll(machineInput(2))).id;
    fx.m3 = (await h.operator.machines.enroll(machineInput(3))).id;
    fx.mDel = (await h.operator.machines.enroll(machineInput(4))).id;
    const bmc = { driver: "fake" as const, address: "10.9.9.9", username: "u", password: "p" };
    fx.mBmc = (await h.operator.machines.enroll(machineInput(5, { bmc }))).id;
    // A running job (no orchestrator in router tests, so it stays running until cancelled).
    fx.mJob = (await h.operator.machines.enroll(machineInput(6))).id;
    transition(h.domain, fx.mJob, "manage", { actor: "test" });
    fx.job = (await startJob(h.domain, { machineId: fx.mJob, kind: "inspect" }, "test")).jobId;
    // As in production (ensureAdmin), the database holds an enabled admin.
    await h.addUser("root", "admin", "root-password-1");
    fx.userId = (await h.addUser("carol", "viewer", "carol-password-1")).id;
    // Batches: machines that may be inspected; one paused batch (resume) and one running batch (abort).
    // With a (fake) BMC: a job boots its machine through it; the plan skips machines without one.
    const manageable = async (n: number) => {
      const { id } = await h.operator.machines.enroll(machineInput(n, { bmc: { driver: "fake", address: `10.9.10.${n}`, username: "u", password: "p" } }));
      await h.operator.machines.action({ id, action: "manage" });
      return id;
    };
    fx.mBatch = await manageable(16);
    fx.bPaused = (await h.operator.batches.create({ selection: { ids: [await manageable(17)] }, kind: "inspect" })).batchId;
    h.db.update(batches).set({ state: "paused" }).where(eq(batches.id, fx.bPaused)).run();
    fx.bRunning = (await h.operator.batches.create({ selection: { ids: [await manageable(18)] }, kind: "inspect" })).batchId;
    // The operator caller as a real user (API tokens belong to one), and a token of theirs to revoke.
    await h.addUserWithId(h.operatorUser.id, "operator");
    await h.store.db.update(h.store.t.users).set({ passwordHash: await hashPassword("operator-password-1") }).where(eq(h.store.t.users.id, h.operatorUser.id));
    fx.token = (await h.operator.tokens.create({ name: "to-revoke", scope: "role", expiresInDays: 1 })).info.id;
    fx.subnet = (await h.admin.subnets.create({ name: "auth-subnet-a", cidr: "10.202.0.0/24" })).id;
    fx.subnetDel = (await h.admin.subnets.create({ name: "auth-subnet-del", cidr: "10.203.0.0/24" })).id;
    m1Network = (await h.operator.machines.network({ id: fx.m1 })).network;
    // A real power operation to wait on (fake driver: done within milliseconds).
    powerOp = startPowerAction(h.domain, [fx.mBmc], "on", "user:test").operationId;
    await h.operator.oob.powerWait({ operationId: powerOp, timeoutMs: 5000 });
  });
  afterAll(() => h.close());

  it("has a sample input for every mutation and query (add one when adding a procedure)", async () => {
    expect(MUTATIONS.length).toBeGreaterThanOrEqual(12);
    expect(Object.keys(mutationInputs).sort()).toEqual([...MUTATIONS].sort());
    expect(Object.keys(queryInputs).sort()).toEqual([...QUERIES].sort());
  });

  describe("mutations", () => {
    let before: Record<string, number>;
    beforeAll(async () => {
      before = await snapshot();
    });

    it.each(MUTATIONS)("%s: anonymous gets UNAUTHORIZED", async (path) => {
      await expectTrpcError(procedureAt(h.anonymous, path)(mutationInputs[path]!()), "UNAUTHORIZED");
    });

    it.each(MUTATIONS.filter((p) => !READ_ONLY_MUTATIONS.includes(p)))("%s: a read-only API token gets FORBIDDEN, even an admin's", async (path) => {
      const { error } = await expectTrpcError(procedureAt(h.readOnlyAdmin, path)(mutationInputs[path]!()), "FORBIDDEN");
      expect(error.message).toMatch(/read-only/);
    });

    it.each(READ_ONLY_MUTATIONS)("%s writes nothing: a read-only API token may call it, a read-only viewer may not", async (path) => {
      await expect(procedureAt(h.readOnlyAdmin, path)(mutationInputs[path]!())).resolves.toBeDefined();
      const roViewer = h.caller({ id: 4242, name: "ro-viewer", role: "viewer" }, undefined, "127.0.0.1", { id: 2, readOnly: true });
      await expectTrpcError(procedureAt(roViewer, path)(mutationInputs[path]!()), "FORBIDDEN");
    });

    it.each(MUTATIONS.filter((p) => minRole(p) !== "viewer"))("%s: viewer gets FORBIDDEN", async (path) => {
      const { error } = await expectTrpcError(procedureAt(h.viewer, path)(mutationInputs[path]!()), "FORBIDDEN");
      expect(error.message).toContain(minRole(path));
    });

    it.each(MUTATIONS.filter((p) => minRole(p) === "admin"))("%s: operator gets FORBIDDEN", async (path) => {
      await expectTrpcError(procedureAt(h.operator, path)(mutationInputs[path]!()), "FORBIDDEN");
    });

    it("refused calls changed nothing", async () => {
      expect(await snapshot()).toEqual(before);
    });

    // Control: the same inputs succeed for the role they need, so the refusals above came from the role check.
    it.each(MUTATIONS)("%s: succeeds for its role", async (path) => {
      const caller = minRole(path) === "admin" ? h.admin : h.operator;
      if (minRole(path) === "viewer") expect(MUTATIONS.filter((p) => minRole(p) === "viewer").sort()).toEqual([...VIEWER_MUTATIONS].sort());
      await procedureAt(caller, path)(mutationInputs[path]!());
    });
  });

  describe("queries", () => {
    it.each(QUERIES.filter((p) => p !== "auth.me"))("%s: anonymous gets UNAUTHORIZED", async (path) => {
      await expectTrpcError(procedureAt(h.anonymous, path)(queryInputs[path]!()), "UNAUTHORIZED");
    });

    it.each(QUERIES.filter((p) => minRole(p) === "viewer"))("%s: a viewer may call it", async (path) => {
      await expect(procedureAt(h.viewer, path)(queryInputs[path]!())).resolves.toBeDefined();
    });

    it.each(QUERIES.filter((p) => p !== "auth.me"))("%s: a read-only token of its role may call it", async (path) => {
      await expect(procedureAt(h.readOnlyAdmin, path)(queryInputs[path]!())).resolves.toBeDefined();
    });

    it.each(QUERIES.filter((p) => minRole(p) === "admin"))("%s: viewer and operator get FORBIDDEN, admin may", async (path) => {
      await expectTrpcError(procedureAt(h.viewer, path)(queryInputs[path]!()), "FORBIDDEN");
      await expectTrpcError(procedureAt(h.operator, path)(queryInputs[path]!()), "FORBIDDEN");
      await expect(procedureAt(h.admin, path)(queryInputs[path]!())).resolves.toBeDefined();
    });

    it("auth.me is public: null when signed out, the user when signed in", async () => {
      expect(await h.anonymous.auth.me()).toBeNull();
      expect(await h.viewer.auth.me()).toMatchObject({ role: "viewer" });
    });
  });
});

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
