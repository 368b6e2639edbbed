import { defineConfig } from "drizzle-kit";

// The PostgreSQL twin of drizzle.config.ts: `npx drizzle-kit generate --config drizzle.pg.config.ts --name <what>`.
// Its migrations are applied by server/db/pg/client.ts when RACKHAND_DATABASE_URL selects PostgreSQL.
export default defineConfig({
  dialect: "postgresql",
  schema: "./server/db/pg/schema/index.ts",
  out: "./drizzle-pg",
});
