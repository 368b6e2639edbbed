import { configDefaults, defineConfig } from "vitest/config";

/**
 * Two projects. `sqlite`: every unit, router and integration test, as always. `postgres`: the files of STORE_SLICE
 * (router and integration suites included) once more with RACKHAND_TEST_STORE=postgres: the harness gives `h.store`
 * a fresh database of a private PostgreSQL (server/testing/pg-global-setup.ts) and `h.db`/`domain.db` is the
 * fail-loud noSqliteOnPostgres(), as in the server; an app (`startApp`, a server or worker process) gets its own
 * copy of the migrated template through testDatabaseEnv() (server/testing/test-store.ts). Same test code.
 * `*.pg.test.ts`: what exists only on PostgreSQL (several processes on one database), in the `postgres` project only.
 * Integration files not in STORE_SLICE: those of tools with no database (ipmitool, rmcp probe, loaders, templates,
 * the package proxy, oob/parallel); db/copy-to-postgres.int (copies SQLite into a cluster of its own: both stores
 * already). Unit files outside it run on SQLite only (many test SQLite itself).
 */
const PG_ONLY = "server/**/*.pg.test.ts";
const STORE_SLICE = ["server/auth/throttle.test.ts", "server/auth/auth-store.test.ts", "server/api/routers/auth.test.ts", "server/api/routers/roles.test.ts", "server/db/store.test.ts", "server/orchestrator/step-leases.test.ts", "server/agent-api/agent-work.test.ts", "server/orchestrator/network-files.test.ts", "server/orchestrator/agent-install.test.ts", "server/subnets/allocate-pending.test.ts", "server/subnets/subnets-store.test.ts", "server/netboot/profiles.test.ts", "server/events/audit.test.ts", "server/machines/lifecycle.test.ts", "server/api/routers/racks.test.ts", "server/machines/enroll-store.test.ts", "server/machines/selection-store.test.ts", "server/oob/power-sync.test.ts", "server/http/health.test.ts", "server/machines/queries.test.ts", "server/machines/export-csv.test.ts", "server/machines/bulk-enroll.test.ts", "server/machines/csv.test.ts", "server/machines/enroll-subnets-store.test.ts", "server/netboot/agent-nonce.test.ts", "server/netboot/dhcp-firmware.test.ts", "server/netboot/installer-files.test.ts", "server/demo/seed.test.ts", "server/netboot/service.test.ts", "server/proxy/job-lines.test.ts", "server/api/routers/jobs.test.ts", "server/api/routers/machines.test.ts", "server/api/routers/machines-list.test.ts", "server/app.int.test.ts", "server/app-close.int.test.ts", "server/api/access-matrix.int.test.ts", "server/http/boot.int.test.ts", "server/http/hardening.int.test.ts", "server/http/machines-csv.int.test.ts", "server/installer-logs/receiver.int.test.ts", "server/auth/tokens.int.test.ts", "server/demo/demo-agents.int.test.ts", "server/events/job-room.int.test.ts", "server/orchestrator/agent.int.test.ts", "server/orchestrator/agent-crash.int.test.ts", "server/orchestrator/batches.int.test.ts", "server/orchestrator/orchestrator.int.test.ts", "server/oob/power-sync.int.test.ts", "server/operator/power-start.int.test.ts", "server/api/fuzz-http.int.test.ts", "server/subnets/allocate.int.test.ts", "server/oob/console.int.test.ts", "server/netboot/dnsmasq.int.test.ts"];

export default defineConfig({
  test: {
    environment: "node",
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: "sqlite",
          include: ["lib/**/*.test.ts", "server/**/*.test.ts", "agent/**/*.test.ts", "ramdisk/**/*.test.ts", "cli/**/*.test.ts", "lab/vlan-port.test.ts", "lab/rack.int.test.ts"],
          exclude: [...configDefaults.exclude, PG_ONLY],
        },
      },
      {
        extends: true,
        test: {
          name: "postgres",
          include: [...STORE_SLICE, PG_ONLY],
          env: { RACKHAND_TEST_STORE: "postgres" },
          globalSetup: ["server/testing/pg-global-setup.ts"],
        },
      },
    ],
  },
});
