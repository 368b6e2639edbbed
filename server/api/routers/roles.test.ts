/** Every tRPC procedure against every role: the least role it needs is enforced, and nothing less passes. */
import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../../../lib/schemas";
import { hashPassword } from "../../auth/password";

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
    "batches.create": () => ({ selection: { ids: [fx.mBatch] }, kind: "power_on" }),
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
  // Everything counted lives in h.store (PostgreSQL in the `postgres` project).
  const snapshot = async () =>
    Object.fromEntries(
      await Promise.all(
        (["machines", "racks", "events", "nics", "bmcs", "users", "sessions", "apiTokens"] as const).map(
          async (k) => [k, (await h.store.db.select({ n: count() }).from(h.store.t[k]))[0]!.n] as const,
        ),
      ),
    );

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
    await transition(h.domain, fx.mJob, "manage", { actor: "test" });
    fx.job = (await startJob(h.domain, { machineId: fx.mJob, kind: "power_on" }, "test")).jobId;
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
    fx.bPaused = (await h.operator.batches.create({ selection: { ids: [await manageable(17)] }, kind: "power_on" })).batchId;
    await h.store.db.update(h.store.t.batches).set({ state: "paused" }).where(eq(h.store.t.batches.id, fx.bPaused));
    fx.bRunning = (await h.operator.batches.create({ selection: { ids: [await manageable(18)] }, kind: "power_on" })).batchId;
    // The operator caller as a real user (API tokens belong to one), and a token of theirs to revoke.
    await h.addUserWithId(h.operatorUser.id, "operator");
    await h.store.db.update(h.store.t.users).set({ passwordHash: await hashPassword("operator-password-1") }).where(eq(h.store.t.users.id, h.operatorUser.id));
    fx.token = (await h.operator.tokens.create({ name: "to-revoke", scope: "role", expiresInDays: 1 })).info.id;
    fx.subnet = (await h.admin.subnets.create({ name: "auth-subnet-a", cidr: "10.202.0.0/24" })).id;
    fx.subnetDel = (await h.admin.subnets.create({ name: "auth-subnet-del", cidr: "10.203.0.0/24" })).id;
    m1Network = (await h.operator.machines.network({ id: fx.m1 })).network;
    // A real power operation to wait on (fake driver: done within milliseconds).
    powerOp = (await startPowerAction(h.domain, [fx.mBmc], "on", "user:test")).operationId;
    await h.operator.oob.powerWait({ operationId: powerOp, timeoutMs: 5000 });
  });
  afterAll(() => h.close());

  it("has a sample input for every mutation and query (add one when adding a procedure)", () => {
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
      const r = await procedureAt(caller, path)(mutationInputs[path]!());
      // Its BMC command runs in the background holding the machine: let it end before the next hand action on it.
      if (path === "oob.powerStart") await h.operator.oob.powerWait({ operationId: (r as { operationId: string }).operationId, timeoutMs: 5000 });
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

