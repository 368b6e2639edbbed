import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createCaller } from "../api/root";
import type { TrpcContext } from "../api/trpc";
import { SecretBox } from "../auth/secrets";
import { LoginThrottle } from "../auth/throttle";
import { createUser } from "../auth/users";
import { loadConfig, type Config } from "../config";
import type { Domain } from "../context";
import { openDatabase } from "../db/client";
import { inArray } from "drizzle-orm";
import { bmcs, machines, osProfiles, users } from "../db/schema";
import { sqliteStore, type Store } from "../db/store";
import { testPgStore } from "./test-store";
import { EventBus } from "../events/bus";
import type { LiveEvent } from "../../lib/live-events";
import type { Role } from "../../lib/schemas";
import { silentLogger } from "../log";
import type { CallObserver } from "../oob/exec";
import { createOobRuntime, defaultOobConfig } from "../oob/registry";
import type { OobConfig } from "../oob/types";
import type { SessionUser } from "../../lib/dto";

/**
 * A real, migrated SQLite database in a fresh temporary directory, with the domain wired as in production.
 * No mocks of our own modules: tests call the router through createCaller.
 *
 * `store` is the Store of the converted slices (auth, jobs and steps, machines, racks, events): the Store over that SQLite database, or, with
 * RACKHAND_TEST_STORE=postgres (the vitest project `postgres`), a fresh PostgreSQL database of the project's
 * cluster. Tests of those slices read and write through `h.store`, so one test file runs on both.
 */
export function createHarness(opts: { config?: Partial<Config>; oob?: Partial<OobConfig>; observe?: CallObserver } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-test-"));
  const db = openDatabase(path.join(dataDir, "rackhand.db"));
  const bus = new EventBus();
  const published: LiveEvent[] = [];
  bus.subscribe((e) => published.push(e));
  // NODE_ENV is spelled out because Next's types make it a required key of NodeJS.ProcessEnv.
  const config: Config = loadConfig({ RACKHAND_DATA_DIR: dataDir, NODE_ENV: "test" }, { ui: false, powerSync: false, ...opts.config });
  const oob = createOobRuntime(defaultOobConfig(dataDir, { ...config.oob, ...opts.oob }), { observe: opts.observe });
  const store: Store = testStoreKind() === "postgres" ? testPgStore() : sqliteStore(db);
  const domain: Domain = { db, store, bus, secrets: SecretBox.open(dataDir), log: silentLogger, oob };
  let nextUserId = 1000;
  const cookies: string[] = [];

  const loginThrottle = new LoginThrottle();
  function caller(user: SessionUser | null, sessionToken?: string, clientIp = "127.0.0.1", token?: TrpcContext["token"]) {
    const ctx: TrpcContext = { domain, config, user, sessionToken, clientIp, loginThrottle, setCookie: (c) => cookies.push(c), ...(token && { token }) };
    return createCaller(ctx);
  }
  const as = (role: Role, name = role) => caller({ id: nextUserId++, name, role });
  const operatorUser: SessionUser = { id: nextUserId++, name: "operator", role: "operator" };

  return {
    dataDir,
    db,
    store,
    domain,
    config,
    published,
    cookies,
    caller,
    admin: as("admin"),
    operator: caller(operatorUser),
    operatorUser,
    /** An admin acting through a read-only API token (server/auth/tokens.ts). */
    readOnlyAdmin: caller({ id: nextUserId++, name: "ro-admin", role: "admin" }, undefined, "127.0.0.1", { id: 1, readOnly: true }),
    viewer: as("viewer"),
    anonymous: caller(null),
    async addUser(name: string, role: Role, password: string) {
      return createUser(domain, { name, role, password }, "test");
    },
    /** A users row for one of the callers above (their ids are otherwise not in the database). */
    async addUserWithId(id: number, role: Role, name = `${role}-${id}`) {
      db.insert(users).values({ id, name, role, passwordHash: "x", createdAt: new Date() }).run();
      if (store.dialect === "postgres") await store.db.insert(store.t.users).values({ id, name, role, passwordHash: "x", createdAt: new Date() });
    },
    /**
     * PostgreSQL: copy these machines' rows (and their BMCs) from the store into the SQLite database, for code still
     * reading `domain.db` (bulk enrollment, the CSV import, netboot, proxy, installer logs). A no-op on SQLite. Goes
     * once those are on the Store.
     */
    async mirrorToSqlite(ids: number[]) {
      if (store.dialect !== "postgres" || ids.length === 0) return;
      const { machines: m, bmcs: b } = store.t;
      const rows = await store.db.select().from(m).where(inArray(m.id, ids));
      db.insert(machines).values(rows.map((r) => ({ ...r, rackId: null, osProfileId: null }))).run();
      const bmcRows = await store.db.select().from(b).where(inArray(b.machineId, ids));
      if (bmcRows.length) db.insert(bmcs).values(bmcRows).run();
    },
    /**
     * PostgreSQL: copy these OS profiles (written through the Store) into the SQLite database, which server/machines
     * (not on the Store yet) reads when a machine's profile is set. A no-op on SQLite.
     */
    async mirrorProfilesToSqlite(ids: number[]) {
      if (store.dialect !== "postgres" || ids.length === 0) return;
      const rows = await store.db.select().from(store.t.osProfiles).where(inArray(store.t.osProfiles.id, ids));
      db.insert(osProfiles).values(rows).run();
    },
    /** Synchronous, as before; a PostgreSQL store's pool ends in the background (its database stays until the cluster goes). */
    close() {
      if (store.dialect === "postgres") void store.close().catch(() => {});
      db.$client.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
export type Harness = ReturnType<typeof createHarness>;

/** The store the slice tests run on: RACKHAND_TEST_STORE (sqlite, the default, or postgres). */
export function testStoreKind(): "sqlite" | "postgres" {
  const k = process.env.RACKHAND_TEST_STORE ?? "sqlite";
  if (k !== "sqlite" && k !== "postgres") throw new Error(`RACKHAND_TEST_STORE must be sqlite or postgres, not ${JSON.stringify(k)}`);
  return k;
}
