import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

/**
 * A private PostgreSQL for one test file: Debian's server binaries (package `postgresql`), `initdb` into a temporary
 * directory, `pg_ctl start` listening only on a unix socket inside that directory (no TCP port to collide with a
 * parallel run), trust authentication (only this user, or root, can reach the socket directory), stopped and
 * deleted by `stop()`. PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user the
 * package creates, and the commands run under its uid.
 */
export interface PgCluster {
  /** Connection URL of the `postgres` database. */
  url: string;
  /** The data directory, the socket directory and the server log live here. */
  dir: string;
  /** A new empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** `pg_ctl restart -m fast`: every connection is cut, the data stays. */
  restart(): Promise<void>;
  /** Stop (fast shutdown) and delete the directory. */
  stop(): Promise<void>;
  /** The server log so far (attached to failures). */
  log(): string;
}

const INSTALL_HINT = "install Debian's postgresql package: bash scripts/install-system-deps.sh test";

/**
 * The newest PostgreSQL server binary directory, /usr/lib/postgresql/<version>/bin (or $RACKHAND_PG_BIN).
 * @throws Error when there is none: tests that need PostgreSQL fail, they never skip.
 */
export function findPgBin(): string {
  const override = process.env.RACKHAND_PG_BIN;
  const candidates = override
    ? [override]
    : (fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql") : [])
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => `/usr/lib/postgresql/${v}/bin`);
  const found = candidates.find((d) => ["initdb", "pg_ctl", "postgres"].every((b) => fs.existsSync(path.join(d, b))));
  if (!found) {
    throw new Error(`PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in ${candidates.join(", ") || "/usr/lib/postgresql/*/bin"}: ${INSTALL_HINT}`);
  }
  return found;
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`running as root, and there is no "postgres" user to run PostgreSQL as: ${INSTALL_HINT}`);
  }
}

/** The environment less libpq's PG* variables (PGPORT, PGDATA…), which would steer the test server or its clients. */
function withoutPgVars(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("PG"))) as NodeJS.ProcessEnv;
}

let dbCounter = 0;

export async function startPgCluster(): Promise<PgCluster> {
  const bin = findPgBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-pg-"));
  const data = path.join(dir, "data");
  const sock = path.join(dir, "sock");
  const logFile = path.join(dir, "server.log");
  fs.mkdirSync(sock);
  const asUser = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (asUser) for (const p of [dir, sock]) fs.chownSync(p, asUser.uid, asUser.gid);
  const opts = { ...(asUser ?? {}), cwd: dir, env: { ...withoutPgVars(process.env), LANG: "C", LC_ALL: "C", TZ: "UTC" } };
  const pgCtl = (...args: string[]) => run(path.join(bin, "pg_ctl"), ["-D", data, "-l", logFile, "-w", "-t", "60", ...args], opts);
  const log = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "");
  const url = (db: string) => `postgres://postgres@localhost/${db}?host=${encodeURIComponent(sock)}`;

  try {
    await run(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], opts);
    // Test settings: the socket in our directory only, no durability (a crash loses nothing a test needs).
    fs.appendFileSync(
      path.join(data, "postgresql.conf"),
      [
        "listen_addresses = ''",
        `unix_socket_directories = '${sock}'`,
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "shared_buffers = 16MB",
        "max_connections = 200",
        "",
      ].join("\n"),
    );
    await pgCtl("start");
  } catch (err) {
    const detail = `${(err as Error).message}\n${log()}`;
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a test PostgreSQL (${bin}): ${detail}`);
  }

  let stopped = false;
  // If the test process ends without stop() (a hook that timed out, a crash), the server must not outlive it:
  // immediate shutdown of our own postmaster (by the pid in its data directory), then the directory goes.
  const onExit = () => {
    if (stopped) return;
    try {
      const pid = Number(fs.readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      if (pid > 1) process.kill(pid, "SIGQUIT");
    } catch {
      // not running
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  return {
    url: url("postgres"),
    dir,
    log,
    async createDatabase(name = `t${process.pid}_${++dbCounter}`) {
      if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad test database name ${JSON.stringify(name)}`);
      const c = new pg.Client({ connectionString: url("postgres") });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async restart() {
      await pgCtl("restart", "-m", "fast");
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off("exit", onExit);
      try {
        await pgCtl("stop", "-m", "fast");
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
