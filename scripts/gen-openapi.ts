// Regenerate docs/openapi.json from the routers (npm run openapi); server/api/openapi.test.ts fails when it drifts.
import fs from "node:fs";
import path from "node:path";
import { buildOpenApi } from "../server/api/openapi";

const file = path.resolve(import.meta.dirname, "../docs/openapi.json");
fs.writeFileSync(file, JSON.stringify(buildOpenApi(), null, 2) + "\n");
console.log(`wrote ${file}`);
