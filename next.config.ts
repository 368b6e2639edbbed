import type { NextConfig } from "next";

const config: NextConfig = {
  // The UI talks to the server only over tRPC and socket.io; server code is bundled separately (scripts/build-server.mjs).
  serverExternalPackages: ["better-sqlite3"],
  // `npm test` type-checks the whole project with tsc once; no need to do it again inside next build.
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  reactStrictMode: true,
  turbopack: { root: import.meta.dirname },
};
export default config;
