import type http from "node:http";
import {
  getErrorShape,
  getHTTPStatusCode,
  getTRPCErrorFromUnknown,
  isAsyncIterable,
  isObject,
  isPromise,
  transformTRPCResponse,
  TRPCError,
  type AnyRootTypes,
  type AnyRouter,
  type RootConfig,
  type TRPCErrorShape,
  type TRPCResponse,
} from "@trpc/server/unstable-core-do-not-import";

/**
 * The common tRPC call without tRPC's fetch adapter: one query (GET) or one mutation (POST, application/json), not
 * batched and not streamed, runs the same procedure (its middlewares: auth, roles, input and output validation) with
 * the same context, and answers the same status, headers and JSON as tRPC's standalone handler. tRPC's handler turns
 * every Node request into a fetch Request and its answer into a Response stream; that cost ~0.8–1 ms of server CPU
 * per call on the shared 2-core host (A/B of two builds: auth.me 1.8 → 1.0 ms, enroll 2.85 → 1.8 ms), and ~30 MiB of
 * RSS at 10,000 machines. Anything else (batches, HEAD, other content types,
 * subscriptions, streaming accept headers, unknown paths, URL-encoded paths) returns false: the caller hands the
 * request to tRPC's own handler. server/http/trpc-direct.test.ts compares both handlers answer for answer.
 */
export interface DirectTrpcOptions<TContext> {
  router: AnyRouter;
  /** The prefix before the procedure path, e.g. "/api/trpc/". */
  basePath: string;
  createContext: (opts: { req: http.IncomingMessage; res: http.ServerResponse }) => Promise<TContext>;
  onError?: (opts: { error: TRPCError; path: string | undefined; type: string; input: unknown; ctx: TContext | undefined; req: http.IncomingMessage }) => void;
}

const PATH = /^[A-Za-z0-9_.]+$/;
const VARY = "trpc-accept, accept";
const NONE = Symbol("not read");

function mediaType(header: string | undefined): string | undefined {
  return header?.toLowerCase().split(";", 1)[0]?.trim();
}

/** The whole request body as text, decoded as Request.json() decodes it (UTF-8, a leading BOM dropped). */
function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(new TextDecoder().decode(Buffer.concat(chunks))));
    req.on("error", reject);
  });
}

/** tRPC's test for an answer that would need a streaming link (resolveResponse isDataStream). */
function isDataStream(v: unknown): boolean {
  if (!isObject(v)) return false;
  if (isAsyncIterable(v)) return true;
  return Object.values(v).some(isPromise) || Object.values(v).some(isAsyncIterable);
}

/** Returns a handler that answers the request (true) or leaves it untouched for tRPC's handler (false). */
export function createDirectTrpc<TContext>(opts: DirectTrpcOptions<TContext>) {
  const config = opts.router._def._config as RootConfig<AnyRootTypes>;
  const procedures = opts.router._def.procedures as Record<string, ((o: unknown) => Promise<unknown>) & { _def: { type: string } }>;
  return async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> => {
    const path = url.pathname.slice(opts.basePath.length);
    if (!PATH.test(path) || !Object.hasOwn(procedures, path) || url.searchParams.has("batch")) return false;
    const proc = procedures[path]!;
    const type = proc._def.type;
    const h = req.headers;
    if (h["trpc-accept"] !== undefined || h.accept?.includes("application/jsonl")) return false;
    const contentType = mediaType(h["content-type"]);
    if (type === "query") {
      if (req.method !== "GET" || (contentType !== undefined && contentType !== "application/json")) return false;
    } else if (type === "mutation") {
      if (req.method !== "POST" || contentType !== "application/json") return false;
    } else {
      return false;
    }

    let input: unknown = NONE;
    let reading: Promise<unknown> | undefined;
    const getRawInput = () =>
      (reading ??= (async () => {
        let raw: unknown;
        if (type === "query") {
          const text = url.searchParams.get("input");
          if (text) raw = JSON.parse(text);
        } else {
          raw = JSON.parse(await readBody(req));
        }
        input = raw === undefined ? undefined : config.transformer.input.deserialize(raw);
        return input;
      })().catch((cause: unknown) => {
        // As tRPC's input reader: a body or query string that does not parse is the client's error.
        if (cause instanceof TRPCError) throw cause;
        throw new TRPCError({ code: "BAD_REQUEST", message: cause instanceof Error ? cause.message : "Invalid input", cause });
      }));

    let ctx: TContext | undefined;
    let body: TRPCResponse;
    try {
      ctx = await opts.createContext({ req, res });
    } catch (cause) {
      body = failure(cause);
      return send();
    }
    let data: unknown;
    try {
      data = await proc({ path, getRawInput, ctx, type, signal: undefined, batchIndex: 0 });
    } catch (cause) {
      body = failure(cause);
      return send();
    }
    // tRPC refuses this outside the call, so its error names no path and no input.
    const stream = isDataStream(data);
    body = stream
      ? failure(new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: "Cannot use stream-like response in non-streaming request - use httpBatchStreamLink" }), false)
      : { result: { data } };
    return send();

    function failure(cause: unknown, inCall = true): TRPCResponse {
      const error = getTRPCErrorFromUnknown(cause);
      const seen = inCall && input !== NONE ? input : undefined;
      const at = inCall ? path : undefined;
      opts.onError?.({ error, path: at, type, input: seen, ctx, req });
      const shape = getErrorShape({ config, ctx, error, input: seen, path: at, type: type as "query" | "mutation" }) as TRPCErrorShape;
      return { error: shape };
    }

    function send(): true {
      // As bytes with their length: Node joins a string body to the header text and converts the whole to bytes
      // again on write (two copies of a 30 KB page on the V8 heap per answer); a Buffer is written after the header.
      const json = Buffer.from(JSON.stringify(transformTRPCResponse(config, body)));
      if (res.statusCode === 200) res.statusCode = getHTTPStatusCode(body);
      res.setHeader("vary", VARY);
      res.setHeader("content-type", "application/json");
      res.setHeader("content-length", json.length);
      res.end(json);
      return true;
    }
  };
}
