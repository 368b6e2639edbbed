import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { AppError } from "../../lib/errors";
import { procedureFor, publicProcedure, router, type TrpcContext } from "../api/trpc";
import { createDirectTrpc } from "./trpc-direct";

/**
 * The direct path must answer exactly as tRPC's standalone handler: the same procedures (the app's own error
 * formatter and role middleware from server/api/trpc.ts) behind two servers, the same requests to both, and the
 * status, body and the headers a client reads compared. A request the direct path does not take must reach tRPC's
 * handler untouched (counted).
 */
const testRouter = router({
  hello: publicProcedure.input(z.object({ name: z.string().max(5) }).optional()).query(({ input }) => ({ hi: input?.name ?? "world" })),
  nothing: publicProcedure.query(() => undefined),
  secret: procedureFor("viewer").output(z.object({ ok: z.boolean() })).query(() => ({ ok: true, leaked: "x" }) as { ok: boolean }),
  admin: procedureFor("admin").mutation(() => ({ ok: true })),
  add: procedureFor("operator")
    .input(z.object({ a: z.number(), b: z.number() }))
    .mutation(({ input, ctx }) => {
      ctx.setCookie("seen=1; Path=/");
      return { sum: input.a + input.b };
    }),
  fails: publicProcedure.input(z.object({ code: z.enum(["app", "crash"]) })).mutation(({ input }) => {
    if (input.code === "app") throw new AppError("U_OVERLAP", "U5 is taken", [{ field: "uPosition", message: "taken" }]);
    throw new Error("SQLITE_BUSY at /var/lib/secret.db");
  }),
  stream: publicProcedure.query(() => ({ later: Promise.resolve(1) })),
  sub: publicProcedure.subscription(async function* () {
    yield 1;
  }),
});

function context(req: http.IncomingMessage, res: http.ServerResponse): TrpcContext {
  const role = req.headers["x-role"];
  if (role === "boom") throw new Error("context failed");
  return {
    user: role === "viewer" || role === "operator" || role === "admin" ? { id: 1, name: "u", role } : null,
    clientIp: "127.0.0.1",
    setCookie: (c: string) => res.appendHeader("Set-Cookie", c),
  } as unknown as TrpcContext;
}

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

let standard: http.Server;
let direct: http.Server;
const errors: { standard: string[]; direct: string[] } = { standard: [], direct: [] };
let fallbacks = 0;

async function listen(handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return server;
}

function call(server: http.Server, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString("utf8"),
          headers: { "content-type": res.headers["content-type"], vary: res.headers.vary, "set-cookie": res.headers["set-cookie"] },
        }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

beforeAll(async () => {
  const createContext = async ({ req, res }: { req: http.IncomingMessage; res: http.ServerResponse }) => context(req, res);
  const handler = (into: string[]) =>
    createHTTPHandler({ router: testRouter, basePath: "/api/trpc/", createContext, onError: ({ error, path }) => into.push(`${path}:${error.code}`) });
  const trpc = handler(errors.standard);
  const fallback = handler(errors.direct);
  const fast = createDirectTrpc({ router: testRouter, basePath: "/api/trpc/", createContext, onError: ({ error, path }) => errors.direct.push(`${path}:${error.code}`) });
  standard = await listen((req, res) => trpc(req, res));
  direct = await listen((req, res) => {
    void fast(req, res, new URL(req.url ?? "/", "http://localhost")).then((done) => {
      if (done) return;
      fallbacks++;
      fallback(req, res);
    });
  });
});

afterAll(async () => {
  await new Promise((r) => standard.close(r));
  await new Promise((r) => direct.close(r));
});

const json = { "content-type": "application/json" };
const q = (input: unknown) => `?input=${encodeURIComponent(JSON.stringify(input))}`;

/** [description, method, path, body, headers, taken by the direct path] */
const cases: [string, string, string, string | undefined, Record<string, string>, boolean][] = [
  ["query without input", "GET", "/api/trpc/hello", undefined, {}, true],
  ["query with input", "GET", `/api/trpc/hello${q({ name: "ann" })}`, undefined, {}, true],
  ["query with an empty input parameter", "GET", "/api/trpc/hello?input=", undefined, {}, true],
  ["query, input fails validation", "GET", `/api/trpc/hello${q({ name: "too long" })}`, undefined, {}, true],
  ["query, input not JSON", "GET", "/api/trpc/hello?input=%7Bnope", undefined, {}, true],
  ["query, JSON content type", "GET", "/api/trpc/hello", undefined, json, true],
  ["query returning undefined", "GET", "/api/trpc/nothing", undefined, {}, true],
  ["query needing a user, none", "GET", "/api/trpc/secret", undefined, {}, true],
  ["query needing a user, output stripped of unlisted keys", "GET", "/api/trpc/secret", undefined, { "x-role": "viewer" }, true],
  ["context creation fails", "GET", "/api/trpc/secret", undefined, { "x-role": "boom" }, true],
  ["query answering a promise inside", "GET", "/api/trpc/stream", undefined, {}, true],
  ["mutation", "POST", "/api/trpc/add", JSON.stringify({ a: 2, b: 3 }), { ...json, "x-role": "operator" }, true],
  ["mutation, JSON content type with charset", "POST", "/api/trpc/add", JSON.stringify({ a: 2, b: 3 }), { "content-type": "Application/JSON; charset=utf-8", "x-role": "admin" }, true],
  ["mutation, body with a BOM", "POST", "/api/trpc/add", `\ufeff${JSON.stringify({ a: 1, b: 1 })}`, { ...json, "x-role": "operator" }, true],
  ["mutation, role too low", "POST", "/api/trpc/admin", "{}", { ...json, "x-role": "viewer" }, true],
  ["mutation, body not JSON", "POST", "/api/trpc/add", "{a:", { ...json, "x-role": "operator" }, true],
  ["mutation, empty body", "POST", "/api/trpc/add", "", { ...json, "x-role": "operator" }, true],
  ["mutation, body fails validation", "POST", "/api/trpc/add", JSON.stringify({ a: "1", b: [] }), { ...json, "x-role": "operator" }, true],
  ["mutation, domain error", "POST", "/api/trpc/fails", JSON.stringify({ code: "app" }), json, true],
  ["mutation, internal error (no leak)", "POST", "/api/trpc/fails", JSON.stringify({ code: "crash" }), json, true],
  ["mutation, non-ASCII and hostile text", "POST", "/api/trpc/fails", JSON.stringify({ code: "app\n\0$(x);'\"\\ü" }), json, true],
  ["mutation without a user (UNAUTHORIZED)", "POST", "/api/trpc/add", JSON.stringify({ a: 1, b: 2 }), json, true],
  ["mutation, body JSON null", "POST", "/api/trpc/add", "null", { ...json, "x-role": "operator" }, true],
  ["mutation, body a JSON array", "POST", "/api/trpc/add", "[1,2]", { ...json, "x-role": "operator" }, true],
  ["mutation, body with a prototype key", "POST", "/api/trpc/add", '{"__proto__":{"a":1},"a":1,"b":2}', { ...json, "x-role": "operator" }, true],
  ["mutation, over-long and non-UTF-8 body", "POST", "/api/trpc/add", `{"a":1,"b":2,"x":"${"\u00ff".repeat(20000)}\ud800"}`, { ...json, "x-role": "operator" }, true],
  ["query, input repeated (first one counts)", "GET", `/api/trpc/hello${q({ name: "ann" })}&input=${encodeURIComponent(JSON.stringify({ name: "bob" }))}`, undefined, {}, true],
  ["query, hostile input text", "GET", `/api/trpc/hello${q({ name: "\n\r\0'$(" })}`, undefined, {}, true],
  ["batch=0 (not a batch for tRPC either)", "GET", "/api/trpc/hello?batch=0", undefined, {}, false],
  ["mutation by GET", "GET", "/api/trpc/add", undefined, {}, false],
  ["query by POST", "POST", "/api/trpc/hello", "{}", json, false],
  ["mutation without a content type", "POST", "/api/trpc/add", "{}", { "x-role": "operator" }, false],
  ["mutation as a form", "POST", "/api/trpc/add", "a=1", { "content-type": "application/x-www-form-urlencoded", "x-role": "operator" }, false],
  ["unknown procedure", "GET", "/api/trpc/nope", undefined, {}, false],
  ["prototype key as a procedure", "GET", "/api/trpc/constructor", undefined, {}, false],
  ["URL-encoded path", "GET", "/api/trpc/hell%6F", undefined, {}, false],
  ["path with ..", "GET", "/api/trpc/../hello", undefined, {}, false],
  ["__proto__ as a procedure", "GET", "/api/trpc/__proto__", undefined, {}, false],
  ["NUL in the path", "GET", "/api/trpc/hello%00", undefined, {}, false],
  ["slash-separated path", "GET", "/api/trpc/a/hello", undefined, {}, false],
  ["trailing dot", "GET", "/api/trpc/hello.", undefined, {}, false],
  ["over-long path", "GET", `/api/trpc/${"h".repeat(5000)}`, undefined, {}, false],
  ["quotes and a semicolon in the path", "GET", "/api/trpc/hello%22;rm", undefined, {}, false],
  ["batch", "GET", `/api/trpc/hello,nothing?batch=1&input=${encodeURIComponent("{}")}`, undefined, {}, false],
  ["batch of one", "GET", "/api/trpc/hello?batch=1", undefined, {}, false],
  ["streaming accept", "GET", "/api/trpc/hello", undefined, { "trpc-accept": "application/jsonl" }, false],
  ["streaming accept in Accept", "GET", "/api/trpc/hello", undefined, { accept: "application/json, application/jsonl" }, false],
  ["HEAD", "HEAD", "/api/trpc/hello", undefined, {}, false],
  ["subscription", "GET", "/api/trpc/sub", undefined, {}, false],
];

describe("createDirectTrpc", () => {
  it.each(cases)("%s: the same answer as tRPC's handler", async (_name, method, path, body, headers, taken) => {
    errors.standard.length = 0;
    errors.direct.length = 0;
    const before = fallbacks;
    const a = await call(standard, method, path, body, headers);
    const b = await call(direct, method, path, body, headers);
    expect(b.status).toBe(a.status);
    expect(b.body).toBe(a.body);
    expect(b.headers).toEqual(a.headers);
    expect(errors.direct).toEqual(errors.standard);
    expect(fallbacks - before).toBe(taken ? 0 : 1);
  });

  it("answers the checks the cases rely on", async () => {
    // Guards against both handlers agreeing on something meaningless (e.g. both 404).
    const ok = await call(direct, "POST", "/api/trpc/add", JSON.stringify({ a: 2, b: 3 }), { ...json, "x-role": "operator" });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ result: { data: { sum: 5 } } });
    expect(ok.headers["set-cookie"]).toEqual(["seen=1; Path=/"]);
    const leaked = await call(direct, "GET", "/api/trpc/secret", undefined, { "x-role": "viewer" });
    expect(JSON.parse(leaked.body)).toEqual({ result: { data: { ok: true } } });
    const crash = await call(direct, "POST", "/api/trpc/fails", JSON.stringify({ code: "crash" }), json);
    expect(crash.status).toBe(500);
    expect(crash.body).not.toContain("secret.db");
    const app = await call(direct, "POST", "/api/trpc/fails", JSON.stringify({ code: "app" }), json);
    expect(app.status).toBe(409);
    expect(JSON.parse(app.body).error.data.appCode).toBe("U_OVERLAP");
  });
});
