/**
 * `rackhand`: a small command line client for scripts. It authenticates with an API token (created on the Users
 * page), from --token or RACKHAND_TOKEN, against --url or RACKHAND_URL. Every command takes --json.
 */
import fs from "node:fs";
import readline from "node:readline/promises";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
import { ACTIVE_JOB_STATES, type JobState, type LogLineDto } from "../lib/jobs";
import { MACHINE_STATES, OPERATOR_ACTIONS, type MachineState, type OperatorAction } from "../lib/lifecycle";
import type { LiveEvent } from "../lib/live-events";
import type { BulkPlan } from "../lib/plan";
import { ApiError, call, type Conn } from "./client";

export const USAGE = `rackhand <command> [options]

Commands:
  whoami                              the token's user and role
  db copy-to-postgres                 copy this host's SQLite database into PostgreSQL (rackhand db --help)
  machines list [filter]              list machines
  machines enroll --csv FILE [--dry-run]
                                      enroll machines from a CSV file (all-or-nothing; see the UI's import)
  machines act ACTION (--ids 1,2 | filter) [--profile ID] [--yes]
                                      run a lifecycle action (${OPERATOR_ACTIONS.join(", ")}) on a selection:
                                      shows the server's plan (who acts, who skips and why, what changes),
                                      then asks; --profile: the OS profile for deploy and reinstall
  jobs follow JOB_ID                  print a job's log live until it ends (exit 0 if it succeeded, 3 if not)

Filter: --state S[,S…] (${MACHINE_STATES.join(", ")})  --rack-id N  --power on|off|unknown
        --maintenance yes|no  --q TEXT  --limit N (list only, default 1000)
Options: --url URL (or RACKHAND_URL)  --token TOKEN (or RACKHAND_TOKEN)  --json  --yes  --help`;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Answers a yes/no question (the TTY prompt; tests pass their own). */
  confirm?: (q: string) => Promise<boolean>;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s + "\n"),
  err: (s) => process.stderr.write(s + "\n"),
  env: process.env,
};

class UsageError extends Error {}

interface MachineRow {
  id: number;
  name: string;
  state: MachineState;
  powerState: string;
  maintenance: boolean;
  rackName: string | null;
  bootMac: string | null;
  ip: string | null;
}

export async function main(argv: string[], io_: Io = defaultIo): Promise<number> {
  // Database commands run on the server host, on files and URLs: no API token (cli/db.ts).
  if (argv[0] === "db") return (await import("./db")).dbMain(argv.slice(1), io_);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: "string" },
        token: { type: "string" },
        json: { type: "boolean", default: false },
        yes: { type: "boolean", short: "y", default: false },
        help: { type: "boolean", short: "h", default: false },
        csv: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        ids: { type: "string" },
        profile: { type: "string" },
        state: { type: "string" },
        "rack-id": { type: "string" },
        power: { type: "string" },
        maintenance: { type: "string" },
        q: { type: "string" },
        limit: { type: "string" },
      },
    });
  } catch (err) {
    io_.err(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: o, positionals: pos } = parsed;
  if (o.help || pos.length === 0) {
    io_.out(USAGE);
    return o.help ? 0 : 2;
  }
  const json = o.json;
  try {
    const conn: Conn = { url: o.url ?? io_.env.RACKHAND_URL ?? "", token: o.token ?? io_.env.RACKHAND_TOKEN ?? "" };
    if (!conn.url) throw new UsageError("Set RACKHAND_URL or pass --url (e.g. http://rackhand.example:3000)");
    if (!/^https?:\/\//.test(conn.url)) throw new UsageError(`--url must start with http:// or https://: ${conn.url}`);
    if (!conn.token) throw new UsageError("Set RACKHAND_TOKEN or pass --token (create one on the Users page)");
    const cmd = pos.join(" ");
    const print = (data: unknown, text: () => string) => io_.out(json ? JSON.stringify(data, null, 2) : text());

    if (cmd === "whoami") {
      const me = await call<{ name: string; role: string } | null>(conn, "auth.me", "query");
      if (!me) throw new ApiError("The token was not accepted", 401, "UNAUTHENTICATED");
      print(me, () => `${me.name} (${me.role})`);
      return 0;
    }
    if (cmd === "machines list") {
      const limit = o.limit ? positiveInt(o.limit, "--limit") : 1000;
      const r = await call<{ rows: MachineRow[]; total: number }>(conn, "machines.list", "query", { ...filterOf(o), pageSize: Math.min(limit, 10_000) });
      print(r, () => table(r.rows) + `\n${r.rows.length} of ${r.total} machines`);
      return 0;
    }
    if (cmd === "machines enroll") {
      if (!o.csv) throw new UsageError("machines enroll needs --csv FILE");
      const csv = fs.readFileSync(o.csv, "utf8");
      const r = await call<{ ok: boolean; dryRun: boolean; imported: number; rows: { name?: string }[]; errors: { field: string; message: string }[] }>(
        conn,
        "machines.importCsv",
        "mutation",
        { csv, dryRun: o["dry-run"] },
      );
      print(r, () =>
        r.ok
          ? r.dryRun
            ? `Dry run: ${r.rows.length} row(s) would be enrolled; nothing was written`
            : `Enrolled ${r.imported} machine(s)`
          : `Nothing enrolled; fix these and retry:\n` + r.errors.map((e) => `  ${e.field}: ${e.message}`).join("\n"),
      );
      return r.ok ? 0 : 1;
    }
    if (pos[0] === "machines" && pos[1] === "act") {
      const action = pos[2] as OperatorAction | undefined;
      if (!action || !OPERATOR_ACTIONS.includes(action)) throw new UsageError(`machines act needs an action: ${OPERATOR_ACTIONS.join(", ")}`);
      if (pos.length > 3) throw new UsageError(`Unexpected arguments: ${pos.slice(3).join(" ")}`);
      return await act(conn, action, o, io_, json);
    }
    if (pos[0] === "jobs" && pos[1] === "follow" && pos.length === 3) {
      return await follow(conn, positiveInt(pos[2]!, "JOB_ID"), io_, json);
    }
    throw new UsageError(`Unknown command: ${cmd}`);
  } catch (err) {
    if (err instanceof UsageError) {
      io_.err(json ? JSON.stringify({ error: err.message }) : `${err.message}\n\n${USAGE}`);
      return 2;
    }
    const e = err as ApiError;
    const details = e.details ?? [];
    io_.err(
      json
        ? JSON.stringify({ error: e.message, status: e.status ?? null, code: e.code ?? null, details })
        : [`error: ${e.message}`, ...details.map((d) => `  ${d.field}: ${d.message}`)].join("\n"),
    );
    return 1;
  }
}

function positiveInt(s: string, what: string): number {
  if (!/^\d{1,9}$/.test(s) || Number(s) < 1) throw new UsageError(`${what} must be a positive whole number: ${s}`);
  return Number(s);
}

function filterOf(o: Record<string, string | boolean | undefined>) {
  const f: Record<string, unknown> = {};
  if (typeof o.state === "string") {
    const states = o.state.split(",").map((s) => s.trim());
    for (const s of states) if (!(MACHINE_STATES as readonly string[]).includes(s)) throw new UsageError(`Unknown state ${s}; one of ${MACHINE_STATES.join(", ")}`);
    f.states = states;
  }
  if (typeof o["rack-id"] === "string") f.rackId = positiveInt(o["rack-id"], "--rack-id");
  if (typeof o.power === "string") {
    if (!["on", "off", "unknown"].includes(o.power)) throw new UsageError("--power is on, off or unknown");
    f.power = o.power;
  }
  if (typeof o.maintenance === "string") {
    if (!["yes", "no"].includes(o.maintenance)) throw new UsageError("--maintenance is yes or no");
    f.maintenance = o.maintenance === "yes";
  }
  if (typeof o.q === "string") f.q = o.q;
  return f;
}

function table(rows: MachineRow[]): string {
  const head = ["ID", "NAME", "STATE", "POWER", "MAINT", "RACK", "BOOT MAC", "IP"];
  const cells = rows.map((m) => [String(m.id), m.name, m.state, m.powerState, m.maintenance ? "yes" : "", m.rackName ?? "", m.bootMac ?? "", m.ip ?? ""]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

interface PlanRow {
  id: number;
  name: string;
  state: string;
  reason?: string;
  changes?: string[];
}

/**
 * Show the server's plan (machines.plan: which machines act, which skip and why, what changes), confirm, then
 * execute exactly that plan (its plan id: the server refuses a plan that went stale meanwhile).
 */
async function act(conn: Conn, action: OperatorAction, o: Record<string, string | boolean | undefined>, io_: Io, json: boolean): Promise<number> {
  const ids = typeof o.ids === "string" ? o.ids.split(",").map((s) => positiveInt(s.trim(), "--ids")) : null;
  const filter = filterOf(o);
  if (!ids && Object.keys(filter).length === 0) throw new UsageError("machines act needs --ids or a filter (refusing to act on the whole fleet by accident)");
  if (ids && Object.keys(filter).length) throw new UsageError("Give --ids or a filter, not both");
  const osProfileId = typeof o.profile === "string" ? positiveInt(o.profile, "--profile") : undefined;
  if (osProfileId !== undefined && action !== "deploy" && action !== "reinstall") throw new UsageError("--profile is for deploy and reinstall");
  const selection = ids ? { ids } : { filter };
  const p = await call<BulkPlan>(conn, "machines.plan", "mutation", {
    selection,
    op: { type: "action", action, ...(osProfileId !== undefined && { osProfileId }) },
    limit: 10_000,
  });
  const willAct: PlanRow[] = p.rows.filter((r) => r.act).map((r) => ({ id: r.id, name: r.name, state: r.from, changes: r.changes }));
  const skip: PlanRow[] = p.rows.filter((r) => !r.act).map((r) => ({ id: r.id, name: r.name, state: r.from, reason: r.detail }));
  const plan = { action, planId: p.planId, total: p.total, act: willAct, skip, transitions: p.transitions, changes: p.changes };
  if (!json) {
    io_.out(`Plan: ${action} on ${willAct.length} machine(s), ${skip.length} skipped`);
    for (const m of willAct) io_.out(`  act   ${String(m.id).padStart(5)}  ${m.name}  (${m.state})${m.changes?.length ? `  ${m.changes.join("; ")}` : ""}`);
    for (const m of skip) io_.out(`  skip  ${String(m.id).padStart(5)}  ${m.name}  ${m.reason}`);
  }
  if (willAct.length === 0) {
    if (json) io_.out(JSON.stringify({ plan, results: [] }, null, 2));
    else io_.out("Nothing to do.");
    return skip.length ? 1 : 0;
  }
  if (!o.yes) {
    const ask = io_.confirm ?? (process.stdin.isTTY ? ttyConfirm : null);
    if (!ask) throw new UsageError("Not a terminal: pass --yes to act without the prompt");
    if (!(await ask(`${action} ${willAct.length} machine(s)? [y/N] `))) {
      if (json) io_.out(JSON.stringify({ plan, results: [], confirmed: false }, null, 2));
      else io_.out("Cancelled.");
      return 1;
    }
  }
  const results = await call<{ id: number; name: string; ok: boolean; error?: string; state?: string; skipped?: boolean }[]>(conn, "machines.bulkAction", "mutation", {
    selection,
    action,
    planId: p.planId,
    ...(osProfileId !== undefined && { osProfileId }),
  });
  const acted = results.filter((r) => !r.skipped);
  if (json) io_.out(JSON.stringify({ plan, results: acted }, null, 2));
  else for (const r of acted) io_.out(`  ${r.ok ? "ok  " : "FAIL"}  ${String(r.id).padStart(5)}  ${r.name}  ${r.ok ? `→ ${r.state}` : r.error}`);
  return acted.every((r) => r.ok) ? 0 : 1;
}

async function ttyConfirm(q: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(q)).trim());
  } finally {
    rl.close();
  }
}

/**
 * Follow a job's log: join its room first, then backfill from the HTTP API, then print live lines, each seq once,
 * until the job ends. With --json, one JSON object per line (NDJSON): log lines, then {"job": …} at the end.
 */
async function follow(conn: Conn, jobId: number, io_: Io, json: boolean): Promise<number> {
  const job = await call<{ id: number; state: JobState }>(conn, "jobs.get", "query", { jobId });
  let last = -1;
  const pending: LogLineDto[] = [];
  const emit = (lines: LogLineDto[]) => {
    for (const l of [...lines].sort((a, b) => a.seq - b.seq)) {
      if (l.seq <= last) continue;
      last = l.seq;
      io_.out(json ? JSON.stringify({ jobId, ...l }) : `${new Date(l.ts).toISOString()} ${l.stream === "stderr" ? "!" : " "} ${l.text}`);
    }
  };
  const backfill = async () => {
    for (;;) {
      const lines = await call<LogLineDto[]>(conn, "jobs.logs", "query", { jobId, afterSeq: last, limit: 5000 });
      emit(lines);
      if (lines.length < 5000) return;
    }
  };
  const done = (state: JobState) => {
    if (json) io_.out(JSON.stringify({ job: { id: jobId, state } }));
    else io_.err(`job ${jobId} ${state}`);
    return state === "succeeded" ? 0 : 3;
  };
  if (!ACTIVE_JOB_STATES.includes(job.state)) {
    await backfill();
    return done(job.state);
  }
  const socket = io(conn.url, { path: "/socket.io", transports: ["websocket"], auth: { token: conn.token }, reconnectionDelayMax: 5000 });
  try {
    return await new Promise<number>((resolve, reject) => {
      let backfilled = false;
      socket.on("connect_error", (err) => {
        if (err.message === "UNAUTHENTICATED") reject(new ApiError("The token was refused by the live connection", 401, "UNAUTHENTICATED"));
      });
      socket.on("connect", () => {
        // (Re)join the room, then backfill what was missed while not in it.
        socket
          .timeout(10_000)
          .emitWithAck("subscribe", { jobId })
          .then(async () => {
            await backfill();
            backfilled = true;
            emit(pending.splice(0));
            const now = await call<{ state: JobState }>(conn, "jobs.get", "query", { jobId });
            if (!ACTIVE_JOB_STATES.includes(now.state)) resolve(done(now.state));
          })
          .catch(reject);
      });
      socket.on("live", (e: LiveEvent) => {
        if (e.type === "log.lines" && e.jobId === jobId) {
          if (backfilled) emit(e.lines);
          else pending.push(...e.lines);
        } else if (e.type === "job.changed" && e.jobId === jobId && !ACTIVE_JOB_STATES.includes(e.state)) {
          // Lines are written before the job ends; one last backfill catches any the socket had not delivered.
          backfill().then(() => resolve(done(e.state)), reject);
        }
      });
    });
  } finally {
    socket.disconnect();
  }
}
