import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ACCESS } from "./access";
import { buildOpenApi } from "./openapi";
import { appRouter } from "./root";

type Proc = { _def: { type: string; inputs: unknown[]; output?: unknown } };
const PROCS = Object.entries(appRouter._def.procedures as unknown as Record<string, Proc>);
const doc = buildOpenApi() as { openapi: string; paths: Record<string, Record<string, any>> };

describe("OpenAPI document", () => {
  it("describes every procedure: method, input and output schema, role", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(PROCS.map(([p]) => `/api/trpc/${p}`).sort());
    for (const [name, proc] of PROCS) {
      expect(proc._def.output, `${name} needs .output()`).toBeDefined();
      const item = doc.paths[`/api/trpc/${name}`]!;
      const op = proc._def.type === "query" ? item.get : item.post;
      expect(op, name).toBeDefined();
      expect(op["x-rackhand-role"]).toBe(ACCESS[name]);
      expect(op.responses["200"].content["application/json"].schema.properties.result.properties).toHaveProperty("data");
      if (proc._def.inputs.length) {
        const schema = proc._def.type === "query" ? op.parameters[0].content["application/json"].schema : op.requestBody.content["application/json"].schema;
        expect(Object.keys(schema).length, `${name} input schema`).toBeGreaterThan(0);
      }
    }
    // Spot checks that the schemas are the real ones.
    const list = doc.paths["/api/trpc/machines.list"]!.get;
    expect(list.responses["200"].content["application/json"].schema.properties.result.properties.data.properties.rows.items.properties.state.enum).toContain("deployed");
    expect(doc.paths["/api/trpc/tokens.create"]!.post.requestBody.content["application/json"].schema.required).toEqual(["name", "scope", "expiresInDays"]);
  });

  it("matches the checked-in docs/openapi.json (regenerate with `npm run openapi`)", () => {
    const file = path.resolve(__dirname, "../../docs/openapi.json");
    const checkedIn = JSON.parse(fs.readFileSync(file, "utf8"));
    expect(checkedIn, "docs/openapi.json is out of date: run `npm run openapi` and commit it").toEqual(JSON.parse(JSON.stringify(doc)));
  });
});
