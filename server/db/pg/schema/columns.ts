import { bigint, integer, timestamp } from "drizzle-orm/pg-core";

/**
 * The PostgreSQL spelling of the SQLite schema's recurring column kinds, so each table below reads like its SQLite
 * twin (server/db/schema). The mapping is checked column by column by parity.test.ts:
 * - `integer(...).primaryKey({ autoIncrement: true })` → an identity column ("by default", so a copy from SQLite can
 *   keep its ids); `bigId` for the tables that grow without bound (events, log lines): SQLite's integer is 64-bit;
 * - `integer(..., { mode: "timestamp_ms" })` → `timestamptz(3)` (millisecond precision, a `Date` in TypeScript);
 * - `integer(..., { mode: "boolean" })` → `boolean`;
 * - `text(..., { mode: "json" })` → `jsonb`.
 */
export const id = (name = "id") => integer(name).primaryKey().generatedByDefaultAsIdentity();
export const ts = (name: string) => timestamp(name, { mode: "date", withTimezone: true, precision: 3 });
export const bigId = (name = "id") => bigint(name, { mode: "number" }).primaryKey().generatedByDefaultAsIdentity();
