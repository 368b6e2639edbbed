import { defineConfig } from "vitest/config";

// `npm run test:installer`: agent installs on a QEMU VM (lab/*.installer.test.ts), opt-in — a full debootstrap
// under TCG takes ~30 min per install, beyond the suite's budget. Not part of `npm test`.
export default defineConfig({
  test: {
    include: ["lab/**/*.installer.test.ts"],
    environment: "node",
    pool: "forks",
    fileParallelism: false,
    testTimeout: 130 * 60_000,
    hookTimeout: 20 * 60_000,
  },
});
