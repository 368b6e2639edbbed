#!/usr/bin/env node
// The `rackhand` CLI (cli/main.ts), run through tsx's loader: no build step and no system dependency beyond Node.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
