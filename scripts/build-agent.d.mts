/** Bundle agent/main.ts into one ESM file for Node 20 (see build-agent.mjs); resolves with the output path. */
export function buildAgent(outfile?: string): Promise<string>;
