import { describe, expect, it } from "vitest";
import { z } from "zod";
import { machineEnrollSchema, machineListSchema } from "../../lib/schemas";
import { machinesOut } from "./outputs";
import { appRouter } from "./root";
import { fastParsing, isSyncParsed, syncParsed } from "./sync-parse";
import { publicProcedure, router } from "./trpc";

/** The result of a parse, as a value to compare: the parsed data or the ZodError's issues. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    expect(err).toBeInstanceOf(z.ZodError);
    return { issues: (err as z.ZodError).issues };
  }
}

const HOSTILE = ["line\nbreak", "cr\rx", "nul\0x", "back\\slash", "quote'\"", "$(reboot)", "a;b&c", "../..", "ünïcödé ✓", "x".repeat(5000)];

describe("syncParsed", () => {
  it("answers exactly as zod's own parseAsync, for valid, invalid and hostile values", async () => {
    const mk = () =>
      z.object({
        name: z.string().min(1).max(63),
        n: z.number().int().min(0).optional(),
        tags: z.array(z.string()).default([]),
        mode: z.enum(["a", "b"]).nullable(),
        nested: z.object({ x: z.string().trim() }).optional(),
      });
    const plain = mk();
    const fast = syncParsed(mk());
    const values: unknown[] = [
      { name: "ok", mode: null },
      { name: "ok", n: 3, tags: ["t"], mode: "a", nested: { x: "  pad  " }, extra: "stripped" },
      { name: "", mode: "c" },
      { name: 5, n: 1.5, tags: "no", mode: undefined },
      null,
      "text",
      [],
      { __proto__: { name: "inherited" }, mode: null },
      ...HOSTILE.map((name) => ({ name, mode: "b" })),
    ];
    for (const v of values) expect(await outcome(fast.parseAsync(v))).toEqual(await outcome(plain.parseAsync(v)));
  });

  it("the app's hot schemas: a machine page and an enrollment parse to the same result either way", async () => {
    const row = (i: number) => ({ id: i, name: HOSTILE[i % HOSTILE.length]!, state: "available", powerState: "off", powerPending: null, maintenance: false, uPosition: 3, uHeight: 1, bootMac: "52:54:00:00:00:01", ip: null, lastError: null, bmcReachable: null, bmcLastSeen: null, firmware: "auto", bootFirmware: null, rackId: 1, rackName: "r", osProfileName: null, secret: "never out" });
    const page = { rows: Array.from({ length: 30 }, (_, i) => row(i)), total: 30, page: 1, pageSize: 100, nextCursor: null };
    // The app's schemas are switched when the routers are built (importing ./root above).
    expect(isSyncParsed(machinesOut.list)).toBe(true);
    const viaParse = await machinesOut.list.parseAsync(page);
    expect(viaParse).toEqual(machinesOut.list.parse(page));
    expect(JSON.stringify(viaParse)).not.toContain("never out");
    const bad = { ...page, rows: [{ ...row(1), state: "nope" }] };
    await expect(machinesOut.list.parseAsync(bad)).rejects.toBeInstanceOf(z.ZodError);
    const enroll = { name: "m1", rackId: 1, uPosition: 3, uHeight: 1, bootMac: "52:54:00:00:00:01", bmc: { driver: "fake", address: "10.1.0.1", port: 623, username: "admin", password: "pw" } };
    expect(await machineEnrollSchema.parseAsync(enroll)).toEqual(machineEnrollSchema.parse(enroll));
    expect(await outcome(machineEnrollSchema.parseAsync({ ...enroll, bootMac: "zz\n" }))).toEqual({ issues: (() => { try { machineEnrollSchema.parse({ ...enroll, bootMac: "zz\n" }); } catch (e) { return (e as z.ZodError).issues; } })() });
    expect(await machineListSchema.parseAsync({ states: ["available"] })).toEqual(machineListSchema.parse({ states: ["available"] }));
  });

  it("a schema with an async refinement still takes zod's async path", async () => {
    const s = syncParsed(z.string().refine(async (v) => v === "yes", "must be yes"));
    await expect(s.parseAsync("yes")).resolves.toBe("yes");
    const r = await outcome(s.parseAsync("no"));
    expect(r).toMatchObject({ issues: [{ message: "must be yes" }] });
  });

  it("is idempotent and leaves other parsers alone", () => {
    const s = z.string();
    expect(syncParsed(syncParsed(s))).toBe(s);
    const fn = (v: unknown) => v;
    expect(syncParsed(fn)).toBe(fn);
    expect(isSyncParsed(fn)).toBe(false);
  });

  it("every procedure of the app router validates through syncParsed schemas, and keeps the schema objects", () => {
    let checked = 0;
    for (const [path, proc] of Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { inputs: unknown[]; output?: unknown } }>)) {
      for (const s of [...proc._def.inputs, proc._def.output].filter((x) => x instanceof z.ZodType)) {
        expect(isSyncParsed(s), path).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect((appRouter._def.procedures as unknown as Record<string, { _def: { output?: unknown } }>)["machines.list"]!._def.output).toBe(machinesOut.list);
  });

  it("a procedure built on a wrapped builder refuses bad input as BAD_REQUEST and bad output as an internal error", async () => {
    const r = router({
      echo: fastParsing(publicProcedure).input(z.object({ a: z.number() })).output(z.object({ a: z.number() })).query(({ input }) => ({ a: input.a })),
      broken: publicProcedure.output(z.object({ a: z.number() })).query(() => ({ a: "not a number" }) as unknown as { a: number }),
    });
    const caller = r.createCaller({} as never);
    await expect(caller.echo({ a: 2 })).resolves.toEqual({ a: 2 });
    await expect(caller.echo({ a: "x" } as never)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(caller.broken()).rejects.toMatchObject({ code: "INTERNAL_SERVER_ERROR" });
  });
});
