import type { Role } from "../../lib/schemas";

/**
 * The access rule of every tRPC procedure: "public" (no sign-in) or the least role it needs. The routers enforce
 * it (procedureFor in trpc.ts); this table states it, is published in the OpenAPI document (x-rackhand-role), and
 * server/api/access-matrix.int.test.ts checks that the two agree and that every procedure has a rule, so a new
 * procedure without a line here fails the suite. API tokens: a read-only token may call queries, and the mutations
 * of READ_ONLY_MUTATIONS (they write nothing; a mutation only for an input too large for a GET URL).
 */

export const ACCESS: Record<string, "public" | Role> = {
  "auth.me": "public",
  "auth.login": "public",
  "auth.logout": "public",
  "auth.changePassword": "viewer",
  "racks.list": "viewer",
  "racks.elevations": "viewer",
  "racks.create": "operator",
  "racks.update": "operator",
  "racks.delete": "operator",
  "machines.list": "viewer",
  "machines.count": "viewer",
  "machines.summary": "viewer",
  "machines.get": "viewer",
  "machines.enroll": "operator",
  "machines.importCsv": "operator",
  "machines.update": "operator",
  "machines.delete": "operator",
  "machines.action": "operator",
  "machines.plan": "operator",
  "machines.bulkAction": "operator",
  "machines.setOsProfile": "operator",
  "machines.setMaintenance": "operator",
  "events.list": "viewer",
  "events.facets": "viewer",
  "users.list": "admin",
  "users.create": "admin",
  "users.update": "admin",
  "oob.power": "operator",
  "oob.powerStart": "operator",
  "oob.powerWait": "operator",
  "oob.bootDevice": "operator",
  "oob.checkBmc": "operator",
  "oob.syncSettings": "viewer",
  "oob.syncStatus": "viewer",
  "oob.syncNow": "operator",
  "oob.updateSyncSettings": "admin",
  "osProfiles.list": "viewer",
  "osProfiles.create": "operator",
  "osProfiles.update": "operator",
  "osProfiles.delete": "operator",
  "netboot.settings": "admin",
  "netboot.saveSettings": "admin",
  "netboot.status": "viewer",
  "jobs.forMachine": "viewer",
  "jobs.logs": "viewer",
  "jobs.get": "viewer",
  "jobs.cancel": "operator",
  "batches.create": "operator",
  "batches.list": "viewer",
  "batches.get": "viewer",
  "batches.alerts": "viewer",
  "batches.resume": "operator",
  "batches.abort": "operator",
  "batches.settings": "admin",
  "batches.saveSettings": "admin",
  "tokens.list": "viewer",
  "tokens.create": "viewer",
  "tokens.revoke": "viewer",
};

/** Mutations that write nothing (their input is too large for a GET URL): read-only API tokens may call them. */
export const READ_ONLY_MUTATIONS: readonly string[] = ["machines.plan"];
