import { z } from "zod";

/**
 * tRPC validates inputs and outputs with a zod schema's parseAsync(). Zod 4 compiles an object schema into a fast
 * checker only on the synchronous path (core/schemas.js: `ctx.async === false`), so parseAsync walks every field
 * generically: a page of 100 machines took ~0.5 ms to check against ~0.09 ms with parse(), an enrollment's input
 * ~0.2 ms against ~0.06 ms (measured in-process). Our schemas are synchronous (no async refinements), so parseAsync
 * is pointed at parse(): the same checks, the same result and the same ZodError, just resolved. A schema that does
 * need the async path still gets it (zod's $ZodAsyncError sends it back to the original parseAsync).
 */
const FAST = Symbol("parseAsync via parse");

type Schema = { parse(v: unknown, p?: unknown): unknown; parseAsync(v: unknown, p?: unknown): Promise<unknown>; [FAST]?: true };

function isZodSchema(s: unknown): s is Schema {
  return s instanceof z.ZodType;
}

/** Points `schema.parseAsync` at `schema.parse` (once; the schema object stays the same, for OpenAPI and registries). */
export function syncParsed<T>(schema: T): T {
  if (!isZodSchema(schema) || schema[FAST]) return schema;
  const original = schema.parseAsync.bind(schema);
  const parse = schema.parse.bind(schema);
  schema.parseAsync = (value, params) => {
    try {
      return Promise.resolve(parse(value, params));
    } catch (err) {
      if (err instanceof z.core.$ZodAsyncError) return original(value, params);
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  };
  schema[FAST] = true;
  return schema;
}

/** True once syncParsed() has switched the schema (tests). */
export function isSyncParsed(schema: unknown): boolean {
  return isZodSchema(schema) && schema[FAST] === true;
}

/**
 * A tRPC procedure builder whose .input() and .output() schemas go through syncParsed() before tRPC binds their
 * parseAsync (it does so when the procedure is built). Builders derived from it (.use, .meta, .input, .output,
 * .concat) are wrapped too; .query()/.mutation()/.subscription() return tRPC's own procedure.
 */
export function fastParsing<B extends object>(builder: B): B {
  return new Proxy(builder, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (prop === "input" || prop === "output") return (schema: unknown) => fastParsing(fn.call(target, syncParsed(schema)) as object);
      if (prop === "use" || prop === "meta" || prop === "concat") return (...a: unknown[]) => fastParsing(fn.apply(target, a) as object);
      return fn.bind(target);
    },
  });
}
