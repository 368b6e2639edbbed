import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import * as pgSchema from "../db/pg/schema";
import { pgStore, type Store } from "../db/store";

let counter = 0;

/** The store tests run on: RACKHAND_TEST_STORE (sqlite, the default, or postgres: the vitest project `postgres`). */
export function testStoreKind(): "sqlite" | "postgres" {
  const k = process.env.RACKHAND_TEST_STORE ?? "sqlite";
  if (k !== "sqlite" && k !== "postgres") throw new Error(`RACKHAND_TEST_STORE must be sqlite or postgres, not ${JSON.stringify(k)}`);
  return k;
}

/**
 * A new database copied from the `postgres` project's migrated template (server/testing/pg-global-setup.ts): its
 * URL at once, and `ready` when it exists. Fails loudly outside that project.
 */
function templateCopy(): { url: string; ready: Promise<void> } {
  const template = process.env.RACKHAND_TEST_PG_TEMPLATE;
  if (!template) throw new Error("RACKHAND_TEST_STORE=postgres needs the vitest project `postgres` (its globalSetup starts PostgreSQL): npx vitest run --project postgres");
  const name = `h${process.pid}_${++counter}`;
  const url = new URL(template);
  const admin = new URL(template);
  admin.pathname = "/postgres";
  url.pathname = `/${name}`;
  const ready = (async () => {
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name} TEMPLATE rh_template`);
    } finally {
      await c.end();
    }
  })();
  return { url: url.toString(), ready };
}

/**
 * A PostgreSQL Store on a new database copied from the template. Returned at once, so the harness stays
 * synchronous: the pool waits for the copy before its first connection.
 */
export function testPgStore(): Store {
  const { url, ready } = templateCopy();
  ready.catch(() => {}); // reported by the first query
  const pool = new WaitingPool({ connectionString: url, max: 4 }, ready);
  pool.on("error", () => {});
  return pgStore(drizzle<typeof pgSchema, pg.Pool>(pool, { schema: pgSchema }));
}

/**
 * The environment that puts a whole app (`startApp`, a worker process) on the store of the run: on PostgreSQL,
 * RACKHAND_DATABASE_URL of a fresh copy of the template (one per call: one per app); on SQLite nothing (the app
 * opens rackhand.db in its data directory). Spread it into loadConfig's environment.
 */
export async function testDatabaseEnv(): Promise<{ RACKHAND_DATABASE_URL?: string }> {
  if (testStoreKind() === "sqlite") return {};
  const { url, ready } = templateCopy();
  await ready;
  return { RACKHAND_DATABASE_URL: url };
}

/** A pool whose connections wait for `ready` (the database being created). */
class WaitingPool extends pg.Pool {
  constructor(
    config: pg.PoolConfig,
    private readonly ready: Promise<void>,
  ) {
    super(config);
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(cb: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): void;
  override connect(cb?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): Promise<pg.PoolClient> | void {
    if (!cb) return this.ready.then(() => super.connect());
    this.ready.then(
      () => super.connect(cb as never),
      (err: Error) => cb(err, undefined, () => {}),
    );
  }
}
