/**
 * Property-based fuzzing (fast-check) of every tRPC procedure, in process through the router as an admin (so calls
 * get past the role check and reach validation and the domain), on a real migrated SQLite database with no
 * background services (so nothing else writes while a call runs). For every call: never an internal error (500),
 * never an uncaught crash; 501/502 only as the BMC_* dependency errors they are mapped from. For every refused
 * call: the row count of every table is unchanged and PRAGMA integrity_check says ok (no partial write).
 * Time-bounded: each procedure gets a fixed budget (FUZZ_MS_PER_PROC, default 500 ms).
 * The agent API and the raw HTTP layer are fuzzed over real HTTP in fuzz-http.int.test.ts.
 */
import fc from "fast-check";
import { getHTTPStatusCodeFromError } from "@trpc/server/http";
import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { procedureAt, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { appRouter } from "./root";

const MS = Number(process.env.FUZZ_MS_PER_PROC ?? 500);
/**
 * Procedures whose accepted input would reach outside the test (netboot starts dnsmasq on the host; batch settings
 * carry a webhook URL the batch runner calls): fuzzed only with values that cannot name their real fields.
 */
const OUTWARD = new Set(["netboot.saveSettings", "batches.saveSettings"]);
/** auth.logout ends the caller's session only; it has no input to fuzz. */
const SKIP = new Set(["auth.logout"]);

type AnyProc = { _def: { type: "query" | "mutation"; inputs: unknown[] } };
const PROCS = Object.entries(appRouter._def.procedures as unknown as Record<string, AnyProc>).filter(([p]) => !SKIP.has(p));

/** Strings that have broken parsers, shells, templates and SQL before. */
const HOSTILE = [
  "",
  " ",
  "\n",
  "a\r\nb",
  "\u0000",
  "\\",
  "'",
  '"',
  "$(reboot)",
  "`id`",
  "; rm -rf /",
  "a&b",
  "../../etc/passwd",
  "ignore",
  "infinite",
  "12h",
  "%s%s%n",
  "{{x}}",
  "<script>",
  "' OR 1=1 --",
  "ünïcødé 🚀",
  "\u007f\u0085\u009b",
  "x".repeat(300),
  "y".repeat(70_000),
  "52:54:00:00:00:01",
  "10.0.0.1",
  "http://127.0.0.1:9/a;reboot;",
];
/** Ids that exist (filled in beforeAll), so calls reach the domain code past "not found". */
const IDS: number[] = [1];
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.nat().map((i) => IDS[i % IDS.length]!),
    fc.constantFrom(...HOSTILE),
    fc.string(),
    fc.integer({ min: -3, max: 40 }),
    fc.integer(),
    fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 53, -(2 ** 53), Number.NaN, 1e308),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("v"), { maxKeys: 3 }),
  ),
})).v;

/** The keys of a zod object input (through optional/nullable/default), for inputs that look almost right. */
function keysOf(schema: unknown): string[] {
  let s = schema as { def?: { type: string; innerType?: unknown; options?: unknown[] }; shape?: Record<string, unknown> } | undefined;
  for (let i = 0; i < 5 && s?.def && ["optional", "nullable", "default", "pipe"].includes(s.def.type); i++) s = s.def.innerType as typeof s;
  if (s?.def?.type === "object" && s.shape) return Object.keys(s.shape);
  if (s?.def?.type === "union" && s.def.options) return [...new Set(s.def.options.flatMap((o) => keysOf(o)))];
  return [];
}

function inputFor(path: string, proc: AnyProc): fc.Arbitrary<unknown> {
  const keys = proc._def.inputs.flatMap((i) => keysOf(i));
  if (OUTWARD.has(path)) return fc.oneof(fc.constantFrom(...HOSTILE), fc.integer(), fc.array(fc.string(), { maxLength: 3 }), fc.constant(null));
  if (!keys.length) return value;
  const shaped = fc.record(Object.fromEntries(keys.map((k) => [k, value])), { requiredKeys: [] });
  // Mostly inputs with the right field names and hostile values; sometimes anything at all.
  return fc.oneof({ weight: 4, arbitrary: shaped }, { weight: 1, arbitrary: value });
}

let h: Harness;
const tables: string[] = [];
// A refused sign-in is meant to write: the shared login throttle counts it (login_throttle, one row per name and
// per address), so that table is not part of "a refusal wrote nothing".
const COUNTED_ON_REFUSAL = new Set(["login_throttle"]);
const snapshot = () => {
  const counts = Object.fromEntries(tables.filter((t) => !COUNTED_ON_REFUSAL.has(t)).map((t) => [t, (h.db.$client.prepare(`SELECT count(*) AS n FROM "${t}"`).get() as { n: number }).n]));
  return counts;
};
const integrity = () => h.db.$client.pragma("integrity_check", { simple: true });

beforeAll(async () => {
  h = createHarness({ oob: { ipmitoolPath: "/bin/false", attempts: 1, callTimeoutMs: 2000 } });
  for (const r of h.db.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]) tables.push(r.name);
  // Something for ids to hit: racks, machines (one with a BMC whose ipmitool is /bin/false), a profile, a user.
  await h.addUserWithId(h.operatorUser.id, "operator");
  await h.addUser("root", "admin", "root-password-1");
  await h.addUser("fuzzy", "viewer", "fuzzy-password-1");
  await h.operator.racks.create({ name: "fuzz-rack" });
  for (let n = 1; n <= 4; n++) await h.operator.machines.enroll(machineInput(n));
  await h.operator.machines.enroll(machineInput(5, { bmc: { driver: "ipmitool", address: "127.0.0.1", username: "u", password: "p" } }));
  const ids = new Set<number>();
  for (const t of tables) {
    const cols = h.db.$client.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[];
    if (cols.some((c) => c.name === "id")) for (const r of h.db.$client.prepare(`SELECT id FROM "${t}" LIMIT 20`).all() as { id: number }[]) ids.add(r.id);
  }
  IDS.splice(0, IDS.length, ...ids);
});
afterAll(() => h?.close());

describe("fuzz every procedure (fast-check)", () => {
  it("has procedures to fuzz", () => expect(PROCS.length).toBeGreaterThanOrEqual(48));

  it.each(PROCS.map(([p]) => p))("%s: no internal error, no crash, no partial write", async (path) => {
    const proc = (appRouter._def.procedures as unknown as Record<string, AnyProc>)[path]!;
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(inputFor(path, proc), async (input) => {
        const before = snapshot();
        let status = 200;
        let appCode: string | null = null;
        try {
          await procedureAt(h.admin, path)(input);
        } catch (err) {
          if (!(err instanceof TRPCError)) {
            failures.push(`${path}(${JSON.stringify(input)?.slice(0, 200)}): threw a non-tRPC error ${String(err)}`);
            return false;
          }
          status = getHTTPStatusCodeFromError(err);
          appCode = (err.cause as { code?: string } | undefined)?.code ?? null;
        }
        const dependency = (status === 501 || status === 502) && appCode?.startsWith("BMC_");
        if (status >= 500 && !dependency) {
          failures.push(`${path}(${JSON.stringify(input)?.slice(0, 200)}): ${status} ${appCode ?? ""}`);
          return false;
        }
        if (status >= 400) {
          expect(snapshot(), `${path} refused (${status}) but wrote rows`).toEqual(before);
          expect(integrity()).toBe("ok");
        }
        return true;
      }),
      {
        interruptAfterTimeLimit: MS,
        markInterruptAsFailure: false,
        numRuns: 10_000,
        endOnFailure: true,
        // Always tried first: each field alone with an id that exists (e.g. an update that names only its id).
        examples: OUTWARD.has(path) ? [] : proc._def.inputs.flatMap((i) => keysOf(i)).flatMap((k) => IDS.slice(0, 12).map((id) => [{ [k]: id }] as [unknown])),
      },
    ).catch((err) => {
      throw new Error(`${failures.join("\n")}\n${String(err).slice(0, 2000)}`);
    });
    expect(integrity()).toBe("ok");
  });
});
