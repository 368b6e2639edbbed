import { defineConfig } from "vitest/config";

// Tests on QEMU virtual machines (lab/*.vm.test.ts): one file at a time, each VM needs a core of its own.
export default defineConfig({
  test: {
    include: ["lab/**/*.vm.test.ts"],
    environment: "node",
    pool: "forks",
    fileParallelism: false,
    testTimeout: 480_000,
    hookTimeout: 600_000,
  },
});
