// Bundle the custom server (server/main.ts and everything it imports) into dist/server.mjs.
// npm packages stay external and load from node_modules at run time (better-sqlite3 is native).
import { build } from "esbuild";

await build({
  entryPoints: ["server/main.ts"],
  outfile: "dist/server.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
console.log("built dist/server.mjs");
