import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where drizzle-kit writes migrations: "drizzle" for SQLite (drizzle.config.ts), "drizzle-pg" for PostgreSQL
 * (drizzle.pg.config.ts). Works from source (tsx, vitest) and from the bundle in dist/.
 */
export function migrationsFolder(name: "drizzle" | "drizzle-pg" = "drizzle"): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(process.cwd(), name), path.resolve(here, "../..", name), path.resolve(here, "..", name)];
  const found = candidates.find((p) => fs.existsSync(path.join(p, "meta", "_journal.json")));
  if (!found) throw new Error(`drizzle migrations not found (looked in ${candidates.join(", ")})`);
  return found;
}
