/** OS profiles: what a machine is deployed with (an image the agent writes, or an installer and its template). */
import { and, asc, count, eq, ne } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { OsProfileInput } from "../../lib/netboot";
import type { Actor, Domain } from "../context";
import { machines, osProfiles } from "../db/schema";
import { recordEvent } from "../events/audit";

export interface OsProfileDto extends OsProfileInput {
  id: number;
  machineCount: number;
}

export function listProfiles(d: Domain): OsProfileDto[] {
  const counts = new Map(
    d.db
      .select({ id: machines.osProfileId, n: count() })
      .from(machines)
      .groupBy(machines.osProfileId)
      .all()
      .map((r) => [r.id, r.n]),
  );
  return d.db
    .select()
    .from(osProfiles)
    .orderBy(asc(osProfiles.name))
    .all()
    .map((p) => ({
      id: p.id,
      name: p.name,
      kind: p.kind,
      osFamily: (p.osFamily as OsProfileInput["osFamily"]) ?? null,
      kernel: p.kernel,
      initrd: p.initrd,
      kernelArgs: p.kernelArgs,
      imageUrl: p.imageUrl,
      imageSha256: p.imageSha256,
      imageFormat: (p.imageFormat as OsProfileInput["imageFormat"]) ?? null,
      template: (p.template as OsProfileInput["template"]) ?? null,
      options: (p.options ?? {}) as OsProfileInput["options"],
      machineCount: counts.get(p.id) ?? 0,
    }));
}

function checkName(d: Domain, name: string, exceptId?: number): void {
  const hit = d.db
    .select({ id: osProfiles.id })
    .from(osProfiles)
    .where(exceptId ? and(eq(osProfiles.name, name), ne(osProfiles.id, exceptId)) : eq(osProfiles.name, name))
    .get();
  if (hit) throw new AppError("CONFLICT", `A profile named ${name} already exists`, [{ field: "name", message: "Name taken" }]);
}

function columns(input: OsProfileInput) {
  return {
    name: input.name,
    kind: input.kind,
    osFamily: input.osFamily ?? null,
    kernel: input.kernel ?? null,
    initrd: input.initrd ?? null,
    kernelArgs: input.kernelArgs ?? null,
    imageUrl: input.imageUrl ?? null,
    imageSha256: input.imageSha256 ?? null,
    imageFormat: input.imageFormat ?? null,
    template: input.template ?? null,
    options: input.options as Record<string, unknown>,
  };
}

/** @throws AppError CONFLICT (name taken) */
export function createProfile(d: Domain, input: OsProfileInput, actor: Actor): { id: number } {
  checkName(d, input.name);
  const now = new Date();
  const id = d.db.transaction((tx) => {
    const row = tx.insert(osProfiles).values({ ...columns(input), createdAt: now, updatedAt: now }).returning({ id: osProfiles.id }).get();
    recordEvent(tx, { actor, machineId: null, kind: "os-profile.created", message: `OS profile ${input.name} created`, payload: { profileId: row.id } });
    return row.id;
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
  return { id };
}

/** @throws AppError NOT_FOUND, CONFLICT */
export function updateProfile(d: Domain, id: number, input: OsProfileInput, actor: Actor): void {
  if (!d.db.select({ id: osProfiles.id }).from(osProfiles).where(eq(osProfiles.id, id)).get()) throw new AppError("NOT_FOUND", `OS profile ${id} does not exist`);
  checkName(d, input.name, id);
  d.db.transaction((tx) => {
    tx.update(osProfiles).set({ ...columns(input), updatedAt: new Date() }).where(eq(osProfiles.id, id)).run();
    recordEvent(tx, { actor, machineId: null, kind: "os-profile.updated", message: `OS profile ${input.name} updated`, payload: { profileId: id } });
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
}

/** Machines keep their place but lose the profile. @throws AppError NOT_FOUND, MACHINE_BUSY (a machine deploys with it) */
export function deleteProfile(d: Domain, id: number, actor: Actor): void {
  const p = d.db.select().from(osProfiles).where(eq(osProfiles.id, id)).get();
  if (!p) throw new AppError("NOT_FOUND", `OS profile ${id} does not exist`);
  const busy = d.db.select({ name: machines.name }).from(machines).where(and(eq(machines.osProfileId, id), eq(machines.state, "deploying"))).get();
  if (busy) throw new AppError("MACHINE_BUSY", `${busy.name} is deploying with ${p.name}; wait or abort first`);
  d.db.transaction((tx) => {
    tx.delete(osProfiles).where(eq(osProfiles.id, id)).run();
    recordEvent(tx, { actor, machineId: null, kind: "os-profile.deleted", message: `OS profile ${p.name} deleted`, payload: { profileId: id } });
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
}
