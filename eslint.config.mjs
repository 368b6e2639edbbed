// ESLint (flat config): typescript-eslint's type-aware recommended rules, React hooks, Next's rules.
// Layer rules and cycles are dependency-cruiser's (.dependency-cruiser.cjs); both run in `npm run lint`.
import nextPlugin from "@next/eslint-plugin-next";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", ".next/", "dist/", "drizzle/", "test-results/", "playwright-report/", "next-env.d.ts", "**/*.cjs", "**/*.mjs"] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `_name` marks a deliberately unused binding; `{ drop, ...rest }` is how an object loses a key.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true }],
    },
  },
  {
    // Tests, their harnesses, benchmarks and the lab drive the system from outside: they read JSON from HTTP,
    // sockets and child processes and poke at results without a schema, and their fakes implement async ports
    // with synchronous bodies. Typing every such read would add casts, not safety, so the `any`-flow rules and
    // require-await are off there (only there; source files keep the full recommended type-aware set).
    files: ["**/*.test.{ts,tsx}", "**/testing/**/*.ts", "e2e/**/*.ts", "bench/**/*.ts", "lab/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/unbound-method": "off",
      "@typescript-eslint/require-await": "off",
      // Test servers and sockets take async callbacks (http.createServer, dgram bind); a rejection there fails the test.
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
    },
  },
  {
    // Slices converted to the Store (server/db/store.ts; docs/ARCHITECTURE.md, "PostgreSQL") stay converted: tables
    // come from `store.t` (either database), queries are awaited. Add each slice here as it is converted.
    // The job and step state slice, and deploy planning (jobs, agent-install, network-files, net-model-read, the
    // operator's lifecycle actions, subnets, the subnets and netboot/OS-profile routers).
    files: [
      "server/auth/**/*.ts",
      "server/agent-api/**/*.ts",
      "server/orchestrator/{job-state,job-record,orchestrator,orchestrator-queries,batch-store,batch-runner,batches,batch-settings}.ts",
      "server/oob/{bmc-state,power,power-sync,settings}.ts",
      "server/oob/console/manager.ts",
      "server/operator/{hand-power,bulk-actions}.ts",
      "server/orchestrator/{jobs,agent-install,network-files,net-model-read}.ts",
      "server/operator/lifecycle-actions.ts",
      "server/subnets/subnets.ts",
      "server/api/routers/{subnets,netboot}.ts",
      // The machines slice: enroll.ts and audit.ts keep synchronous helpers for bulk enrollment and unconverted callers.
      "server/racks/**/*.ts",
      "server/machines/{lifecycle,enroll-queries,unique,per-machine,placement,detail}.ts",
      "server/api/routers/{racks,events}.ts",
    ],
    ignores: ["**/*.test.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [{ regex: "/db/(schema|client)$", allowTypeImports: true, message: "A Store slice takes its tables from store.t and its database from the Store." }],
        },
      ],
      "no-restricted-syntax": [
        "error",
        { selector: "CallExpression[callee.property.name=/^(all|get|run|prepare)$/][arguments.length=0]", message: "Await the query (Store) instead of a synchronous .all()/.get()/.run()." },
      ],
    },
  },
  {
    files: ["app/**/*.{ts,tsx}", "components/**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks, "@next/next": nextPlugin },
    rules: { ...reactHooks.configs.recommended.rules, ...nextPlugin.configs.recommended.rules, ...nextPlugin.configs["core-web-vitals"].rules },
  },
);
