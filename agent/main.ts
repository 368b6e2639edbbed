import { parseArgs } from "./config";
import { Agent } from "./runner";

/** Entry of dist/agent.mjs: `node agent.mjs [--api URL] [--mac MAC ...] [--once] ...` (see config.ts). */
async function main(): Promise<void> {
  const config = parseArgs(process.argv.slice(2));
  process.stderr.write(`[agent] rackhand agent on node ${process.version}, api ${config.api}, MACs ${config.macs.join(" ")}\n`);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));
  await new Agent(config).run();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[agent] fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
