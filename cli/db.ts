/**
 * `rackhand db …`: commands run on the server host against the database files, not through the API (no token).
 *   rackhand db copy-to-postgres [--data-dir DIR | --from FILE] [--to URL]
 * The target URL comes from --to or RACKHAND_DATABASE_URL (better: it keeps the password out of `ps` and shell
 * history); the password never appears in the output.
 */
import path from "node:path";
import { parseArgs } from "node:util";

export const DB_USAGE = `rackhand db copy-to-postgres [--data-dir DIR | --from FILE] [--to URL] [--json]

Copies the SQLite database (DIR/rackhand.db; DIR from --data-dir or RACKHAND_DATA_DIR) into an empty PostgreSQL
database: migrations applied first, one transaction, ids kept. Stop Rackhand first. The target URL comes from
--to or RACKHAND_DATABASE_URL (postgres://user:password@host:5432/database); its password is never printed.
Then start Rackhand with RACKHAND_DATABASE_URL set.`;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export async function dbMain(argv: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "data-dir": { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${DB_USAGE}`);
    return 2;
  }
  const { values: o, positionals: pos } = parsed;
  if (o.help || pos.join(" ") !== "copy-to-postgres") {
    (o.help ? io.out : io.err)(DB_USAGE);
    return o.help ? 0 : 2;
  }
  if (o.from && o["data-dir"]) {
    io.err("Give --from FILE or --data-dir DIR, not both");
    return 2;
  }
  const dataDir = o["data-dir"] ?? io.env.RACKHAND_DATA_DIR;
  const from = o.from ?? (dataDir ? path.join(dataDir, "rackhand.db") : undefined);
  if (!from) {
    io.err("Name the SQLite database: --data-dir DIR (or RACKHAND_DATA_DIR) or --from FILE");
    return 2;
  }
  const url = o.to ?? io.env.RACKHAND_DATABASE_URL;
  if (!url) {
    io.err("Name the target: RACKHAND_DATABASE_URL=postgres://… (or --to URL)");
    return 2;
  }
  // Loaded here: the API commands of the CLI need neither better-sqlite3 nor pg.
  const { copyToPostgres, CopyError, redactUrl } = await import("../server/db/copy-to-postgres");
  try {
    const r = await copyToPostgres({ sqliteFile: from, url, log: o.json ? undefined : (s) => io.out(`  ${s}`) });
    const total = r.tables.reduce((n, t) => n + t.rows, 0);
    if (o.json) io.out(JSON.stringify({ ok: true, from, to: redactUrl(url), ...r }, null, 2));
    else io.out(`Copied ${total} rows in ${r.tables.length} tables from ${from} to ${redactUrl(url)} in ${(r.ms / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    const msg = err instanceof CopyError ? err.message : `unexpected error: ${(err as Error).message}`;
    io.err(`copy-to-postgres: ${msg.split(url).join(redactUrl(url))}`);
    return 1;
  }
}
