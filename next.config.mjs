// @ts-check
// JavaScript, not next.config.ts: with a TypeScript config, every `next()` start (the production server included)
// loads Next's 100 MB SWC binding to transpile it, which stayed resident: ~27 MiB of RSS for nothing
// (docs/BENCHMARKS.md, Fleet cost; server/next-config.test.ts).

/** @type {import("next").NextConfig} */
const config = {
  // The UI talks to the server only over tRPC and socket.io; server code is bundled separately (scripts/build-server.mjs).
  serverExternalPackages: ["better-sqlite3"],
  // `npm test` type-checks the whole project with tsc once; no need to do it again inside next build.
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  reactStrictMode: true,
  turbopack: { root: import.meta.dirname },
};
export default config;
