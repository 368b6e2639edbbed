// Bundle the in-band agent (agent/main.ts and everything it imports, zod included) into ONE file,
// dist/agent.mjs, that runs on a bare Node 20 in the RAM disk: no node_modules there.
import { build } from "esbuild";

export async function buildAgent(outfile = "dist/agent.mjs") {
  await build({
    entryPoints: ["agent/main.ts"],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    minify: false,
    sourcemap: false,
    legalComments: "none",
    logLevel: "warning",
  });
  return outfile;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await buildAgent(process.argv[2]);
  console.log(`built ${out}`);
}
