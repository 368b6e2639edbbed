import { z } from "zod";
import { ACCESS, READ_ONLY_MUTATIONS } from "./access";
import { appRouter } from "./root";

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the routers: every tRPC procedure with its input and
 * output zod schemas (z.toJSONSchema), its method (query → GET with `?input=<JSON>`, mutation → POST with a JSON
 * body), the least role it needs (x-rackhand-role, from ACCESS) and the error envelope. Served at
 * GET /api/openapi.json; docs/openapi.json is the checked-in copy (`npm run openapi`), compared in CI.
 */
type Proc = { _def: { type: "query" | "mutation" | "subscription"; inputs: z.ZodType[]; output?: z.ZodType; meta?: unknown } };

const jsonSchema = (schema: z.ZodType, io: "input" | "output") => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, target: "draft-2020-12", unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
};

const errorEnvelope = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["message", "code", "data"],
      properties: {
        message: { type: "string" },
        code: { type: "integer", description: "JSON-RPC style code of the tRPC error" },
        data: {
          type: "object",
          properties: {
            code: { type: "string", description: "tRPC error code, e.g. BAD_REQUEST, UNAUTHORIZED, FORBIDDEN" },
            httpStatus: { type: "integer" },
            path: { type: "string" },
            appCode: { type: ["string", "null"], description: "Rackhand error code (lib/errors.ts), e.g. VALIDATION, MACHINE_BUSY" },
            details: { type: "array", items: { type: "object", properties: { field: { type: "string" }, message: { type: "string" } } } },
          },
        },
      },
    },
  },
} as const;

export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const procs = Object.entries(appRouter._def.procedures as unknown as Record<string, Proc>).sort(([a], [b]) => a.localeCompare(b));
  for (const [name, proc] of procs) {
    const { type, inputs, output } = proc._def;
    const role = ACCESS[name];
    if (!role) throw new Error(`${name} has no access rule in server/api/access.ts`);
    if (!output) throw new Error(`${name} has no .output() schema`);
    const input = inputs[0];
    const inputSchema = input ? jsonSchema(input, "input") : undefined;
    const ok = {
      description: "Success",
      content: {
        "application/json": {
          schema: { type: "object", required: ["result"], properties: { result: { type: "object", properties: { data: jsonSchema(output, "output") } } } },
        },
      },
    };
    const err = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
    const op: Record<string, unknown> = {
      operationId: name,
      tags: [name.split(".")[0]],
      summary: `${name} (${type})`,
      "x-rackhand-role": role,
      ...(READ_ONLY_MUTATIONS.includes(name) ? { "x-rackhand-read-only-token": true } : {}),
      ...(role === "public" ? { security: [] } : {}),
      responses: {
        "200": ok,
        "400": err("Invalid input (details name the fields)"),
        ...(role === "public" ? {} : { "401": err("No valid session or API token"), "403": err("Role too low, or a read-only token on a mutation") }),
        "404": err("Not found"),
        "409": err("Conflict with the current state"),
        "429": err("Rate limited"),
      },
    };
    if (type === "query") {
      if (inputSchema) {
        op.parameters = [{ name: "input", in: "query", required: false, description: "The input as JSON (URL-encoded)", content: { "application/json": { schema: inputSchema } } }];
      }
      paths[`/api/trpc/${name}`] = { get: op };
    } else {
      op.requestBody = { required: !!inputSchema, content: { "application/json": { schema: inputSchema ?? { type: "null" } } } };
      paths[`/api/trpc/${name}`] = { post: op };
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Rackhand HTTP API",
      version: "1",
      description:
        "The tRPC procedures of Rackhand over plain HTTP. Queries are GET with ?input=<URL-encoded JSON>, mutations POST a JSON body; " +
        "the answer is {result:{data}} or {error}. Authenticate with `Authorization: Bearer <API token>` (Users page) or the session cookie. " +
        "x-rackhand-role is the least role a procedure needs; a read-only token may call queries only, and the mutations marked " +
        "x-rackhand-read-only-token (they write nothing).",
    },
    servers: [{ url: "/" }],
    security: [{ bearerAuth: [] }, { sessionCookie: [] }],
    components: {
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", description: "An API token (rh_…)" },
        sessionCookie: { type: "apiKey", in: "cookie", name: "rh_session" },
      },
      schemas: { Error: errorEnvelope },
    },
    paths,
  };
}
