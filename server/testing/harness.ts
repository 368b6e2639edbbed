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
import { noSqliteOnPostgres, openDatabase, type Db } from "../db/client";
import { sqliteStore, type Store } from "../db/store";
import { testPgStore, testStoreKind } from "./test-store";
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
 * `store` is the Store over that SQLite database, or, with RACKHAND_TEST_STORE=postgres (the vitest project
 * `postgres`), a fresh PostgreSQL database of the project's cluster. Tests read and write through `h.store`, so one
 * test file runs on both. On PostgreSQL there is no SQLite file: `db` (and `domain.db`) is the fail-loud
 * `noSqliteOnPostgres()`, as in the real server, so no test passes by reading a side database.
 */
export function createHarness(opts: { config?: Partial<Config>; oob?: Partial<OobConfig>; observe?: CallObserver } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-test-"));
  const onPg = testStoreKind() === "postgres";
  const db: Db = onPg ? noSqliteOnPostgres() : openDatabase(path.join(dataDir, "rackhand.db"));
  const bus = new EventBus();
  const published: LiveEvent[] = [];
  bus.subscribe((e) => published.push(e));
  // NODE_ENV is spelled out because Next's types make it a required key of NodeJS.ProcessEnv.
  const config: Config = loadConfig({ RACKHAND_DATA_DIR: dataDir, NODE_ENV: "test" }, { ui: false, powerSync: false, ...opts.config });
  const oob = createOobRuntime(defaultOobConfig(dataDir, { ...config.oob, ...opts.oob }), { observe: opts.observe });
  const store: Store = onPg ? testPgStore() : sqliteStore(db);
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
      await store.db.insert(store.t.users).values({ id, name, role, passwordHash: "x", createdAt: new Date() });
    },
    /** Synchronous, as before; a PostgreSQL store's pool ends in the background (its database stays until the cluster goes). */
    close() {
      if (onPg) void store.close().catch(() => {});
      else db.$client.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
export type Harness = ReturnType<typeof createHarness>;

export { testStoreKind };
