/**
 * vitest globalSetup of the `postgres` project (vitest.config.ts): one private PostgreSQL for the run
 * (server/testing/pg-cluster.ts: fails when Debian's postgresql is missing, never skips), and a template database
 * with drizzle-pg/ applied, from which the harness copies a fresh database per harness (CREATE DATABASE … TEMPLATE).
 * The template's URL reaches the test workers as RACKHAND_TEST_PG_TEMPLATE.
 */
import { openPgDatabase } from "../db/pg/client";
import { startPgCluster, type PgCluster } from "./pg-cluster";

let cluster: PgCluster | undefined;

export async function setup(): Promise<void> {
  cluster = await startPgCluster();
  const url = await cluster.createDatabase("rh_template");
  const db = await openPgDatabase(url, { max: 1 });
  await db.$client.end();
  process.env.RACKHAND_TEST_PG_TEMPLATE = url;
}

export async function teardown(): Promise<void> {
  await cluster?.stop();
}
