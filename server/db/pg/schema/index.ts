// The PostgreSQL twin of server/db/schema: same tables, columns, indexes and keys, in pg-core types.
// parity.test.ts fails when the two differ; change both together (and generate both migrations, see ARCHITECTURE).
export * from "./auth";
export * from "./events";
export * from "./jobs";
export * from "./leases";
export * from "./machines";
export * from "./os-profiles";
export * from "./racks";
export * from "./subnets";
