/**
 * Property-based fuzzing (fast-check) over real HTTP against the real server: the agent API (lookup, heartbeat,
 * step logs and results, with hostile bodies, content types and tokens) and the raw tRPC endpoint (made-up and real
 * procedure names, methods, query strings and bodies, with no credential and with a bogus token).
 * For every request: no 5xx and the server still answers; for refused requests: no table changed its row count
 * and PRAGMA integrity_check says ok. Time-bounded (FUZZ_HTTP_MS per group, default 6 s).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_API_PREFIX } from "../../lib/agent-protocol";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { machineInput } from "../testing/fixtures";
import { appRouter } from "./root";
import { testDatabaseEnv } from "../testing/test-store";
import { pgPoolOf } from "../db/store";

const MS = Number(process.env.FUZZ_HTTP_MS ?? 6000);
let dataDir: string;
let app: App;
const tables: string[] = [];

/**
 * Rows per table. A refused agent lookup that names an enrolled machine's MAC is recorded on purpose, as at most one
 * `agent.lookup_refused` event per machine per minute (server/agent-api/agent-work.ts): those rows are counted apart
 * (refusedLookupEvents) and bounded after the run; every other refused request must write nothing.
 */
const counts = async () => {
  const cols = tables.map((t) => `(SELECT count(*) FROM "${t}"${t === "events" ? ` WHERE kind <> 'agent.lookup_refused'` : ""}) AS "${t}"`);
  const row = await sqlRow(`SELECT ${cols.join(", ")}`);
  return Object.fromEntries(tables.map((t) => [t, Number(row[t])]));
};
const refusedLookupEvents = async () => Number((await sqlRow(`SELECT count(*) AS n FROM events WHERE kind = 'agent.lookup_refused'`)).n);
/** SQLite's integrity check; PostgreSQL has none to ask for, so there: the database still answers a query. */
const integrity = async () => (app.domain.store.dialect === "sqlite" ? app.domain.db.$client.pragma("integrity_check", { simple: true }) : (await sqlRow("SELECT 'ok' AS r")).r);

/** One row of raw SQL, on either database (the test's own counting queries). */
async function sqlRow(q: string): Promise<Record<string, unknown>> {
  if (app.domain.store.dialect === "sqlite") return app.domain.db.$client.prepare(q).get() as Record<string, unknown>;
  return (await pgPoolOf(app.domain.store).query(q)).rows[0] as Record<string, unknown>;
}

const HOSTILE = ["", "\u0000", "\r\n", "\\", "'\"", "$(reboot)", "; reboot", "a&b", "../..", "ignore", "ünï🚀", "x".repeat(5000), "52:54:00:aa:00:01", "52-54-00-AA-00-02"];
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(...HOSTILE),
    fc.string(),
    fc.integer({ min: -2, max: 40 }),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("v"), { maxKeys: 3 }),
  ),
})).v;
const KEYS = ["macs", "inventory", "waitS", "lines", "attempt", "ok", "result", "error", "seq", "ts", "stream", "text", "json", "id", "input"];
const body = fc.oneof(
  fc.record(Object.fromEntries(KEYS.map((k) => [k, value])), { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.record({ macs: fc.array(fc.constantFrom(...HOSTILE), { maxLength: 3 }), inventory: fc.option(value) }, { requiredKeys: ["macs"] }).map((o) => JSON.stringify(o)),
  value.map((v) => JSON.stringify(v) ?? "null"),
  fc.string(),
  fc.constantFrom("{", "[[[[", '{"macs":', "\u0000\u0001", "null", ""),
);
const headers = fc.record({
  "content-type": fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""),
  authorization: fc.constantFrom("", "Bearer ", "Bearer nope", "Bearer rh_" + "A".repeat(43), "Basic YTpi", "Bearer " + "z".repeat(300)),
});

async function send(url: string, init: RequestInit): Promise<number> {
  const h = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>).filter(([, v]) => v !== ""));
  const res = await fetch(url, { ...init, headers: h });
  await res.arrayBuffer();
  return res.status;
}

async function property(makeRequest: fc.Arbitrary<{ url: string; init: RequestInit }>) {
  const bad: string[] = [];
  await fc.assert(
    fc.asyncProperty(makeRequest, async ({ url, init }) => {
      const before = await counts();
      const status = await send(url, init);
      if (status >= 500) {
        bad.push(`${init.method} ${url.slice(0, 200)} ${String(init.body as string | undefined).slice(0, 200)} → ${status}`);
        return false;
      }
      if (status >= 400) {
        expect(await counts(), `${init.method} ${url} refused with ${status} but wrote rows`).toEqual(before);
      }
      return true;
    }),
    { interruptAfterTimeLimit: MS, markInterruptAsFailure: false, numRuns: 100_000, endOnFailure: true },
  ).catch((err) => {
    throw new Error(`${bad.join("\n")}\n${String(err).slice(0, 1500)}`);
  });
  expect(await integrity()).toBe("ok");
  // Two enrolled machines, one refusal event each per minute at most, over a run shorter than two minutes.
  expect(await refusedLookupEvents()).toBeLessThanOrEqual(4);
  const health = await fetch(`${app.url}/healthz`);
  expect(health.status).toBe(200);
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-fuzz-http-"));
  const config = loadConfig(
    { ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "fuzz-admin-pw", RACKHAND_IPMITOOL: "/bin/false" },
    { ui: false },
  );
  app = await startApp(config, silentLogger);
  const tableQuery = app.domain.store.dialect === "sqlite" ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'" : "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'";
  const names = app.domain.store.dialect === "sqlite" ? (app.domain.db.$client.prepare(tableQuery).all() as { name: string }[]) : (await pgPoolOf(app.domain.store).query<{ name: string }>(tableQuery)).rows;
  for (const r of names) tables.push(r.name);
  expect(tables).toContain("machines");
  // Machines whose MACs the lookup bodies name (no job runs, so a lookup is refused and must not write).
  const login = await fetch(`${app.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "admin", password: "fuzz-admin-pw" }) });
  const cookie = login.headers.getSetCookie()[0]!.split(";")[0]!;
  for (const n of [1, 2]) {
    const r = await fetch(`${app.url}/api/trpc/machines.enroll`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie },
      body: JSON.stringify(machineInput(n, { bootMac: `52:54:00:aa:00:0${n}` })),
    });
    expect(r.status).toBe(200);
  }
});

afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("HTTP fuzz (fast-check)", () => {
  it("agent API: hostile bodies, content types and tokens never give a 5xx or a partial write", async () => {
    const paths = fc.oneof(
      fc.constantFrom("/lookup", "/heartbeat", "/steps/1/logs", "/steps/1/result", "/steps/999999999999/result", "/steps/x/logs", "/nope", "/lookup/../heartbeat"),
      fc.integer({ min: 0, max: 50 }).map((n) => `/steps/${n}/logs`),
    );
    await property(
      fc.record({ p: paths, method: fc.constantFrom("POST", "POST", "POST", "GET", "PUT"), body, headers }).map(({ p, method, body: b, headers: h }) => ({
        url: `${app.url}${AGENT_API_PREFIX}${p}`,
        init: { method, headers: h, ...(method !== "GET" && { body: b }) },
      })),
    );
  }, 60_000);

  it("agent API: a step id past int4 (PostgreSQL's integer) is no step: 404 with any token, and nothing written", async () => {
    const before = await counts();
    for (const id of ["2147483648", "999999999999"]) {
      for (const authorization of ["", "Bearer nope", "Bearer rh_" + "A".repeat(43)]) {
        for (const what of ["logs", "result"]) {
          const r = await fetch(`${app.url}${AGENT_API_PREFIX}/steps/${id}/${what}`, {
            method: "POST",
            headers: { "content-type": "application/json", ...(authorization && { authorization }) },
            body: JSON.stringify(what === "logs" ? { lines: [{ seq: 1, ts: 1, stream: "stdout", text: "x" }] } : { attempt: 1, ok: true }),
          });
          expect(r.status, `${id} ${what} ${authorization}`).toBe(404);
        }
      }
    }
    // The largest int4 is a step id like any other (unknown here): refused as not this token's step, never a 5xx.
    const edge = await fetch(`${app.url}${AGENT_API_PREFIX}/steps/2147483647/result`, { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer nope" }, body: "{}" });
    expect(edge.status).toBe(401);
    expect(await counts()).toEqual(before);
  });

  it("tRPC endpoint: real and made-up procedures, any method, query and body, never a 5xx", async () => {
    const names = [...Object.keys(appRouter._def.procedures), "nope", "machines.nope", "__proto__", "constructor", "machines.list,machines.get", "a/b", "%00"];
    await property(
      fc
        .record({
          name: fc.constantFrom(...names),
          method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
          batch: fc.boolean(),
          input: fc.oneof(value.map((v) => JSON.stringify(v) ?? ""), fc.string(), fc.constantFrom("%", "{", '{"0":{}}')),
          body,
          headers,
        })
        .map(({ name, method, batch, input, body: b, headers: h }) => ({
          url: `${app.url}/api/trpc/${name}?${batch ? "batch=1&" : ""}input=${encodeURIComponent(input)}`,
          init: { method, headers: h, ...(method !== "GET" && { body: b }) },
        })),
    );
  }, 60_000);
});
