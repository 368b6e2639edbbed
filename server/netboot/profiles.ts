/**
 * OS profiles: what a machine is deployed with (an image the agent writes, or an installer and its template). On the
 * Store (either database). The netboot tree reads profiles itself (server/netboot/load.ts).
 */
import { and, asc, count, eq, ne } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import type { OsProfileInput } from "../../lib/netboot";
import type { Actor, Domain } from "../context";
import { storeOf, type Store, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";

export interface OsProfileDto extends OsProfileInput {
  id: number;
  machineCount: number;
}

export async function listProfiles(d: Domain): Promise<OsProfileDto[]> {
  const store = storeOf(d);
  const { machines, osProfiles } = store.t;
  const counts = new Map((await store.db.select({ id: machines.osProfileId, n: count() }).from(machines).groupBy(machines.osProfileId)).map((r) => [r.id, Number(r.n)]));
  return (await store.db.select().from(osProfiles).orderBy(asc(osProfiles.name))).map((p) => ({
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

async function checkName(store: Store, tx: StoreTx, name: string, exceptId?: number): Promise<void> {
  const { osProfiles } = store.t;
  const [hit] = await tx
    .select({ id: osProfiles.id })
    .from(osProfiles)
    .where(exceptId ? and(eq(osProfiles.name, name), ne(osProfiles.id, exceptId)) : eq(osProfiles.name, name))
    .limit(1);
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
export async function createProfile(d: Domain, input: OsProfileInput, actor: Actor): Promise<{ id: number }> {
  const store = storeOf(d);
  const { osProfiles } = store.t;
  const now = new Date();
  // The name check is repeated by the unique index (two processes creating the same name: one gets a 23505).
  const id = await store.transaction(async (tx) => {
    await checkName(store, tx, input.name);
    const [row] = await tx.insert(osProfiles).values({ ...columns(input), createdAt: now, updatedAt: now }).returning({ id: osProfiles.id });
    await recordStoreEvent(store, tx, { actor, machineId: null, kind: "os-profile.created", message: `OS profile ${input.name} created`, payload: { profileId: row!.id } });
    return row!.id;
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
  return { id };
}

/** @throws AppError NOT_FOUND, CONFLICT */
export async function updateProfile(d: Domain, id: number, input: OsProfileInput, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { osProfiles } = store.t;
  await store.transaction(async (tx) => {
    if (!(await tx.select({ id: osProfiles.id }).from(osProfiles).where(eq(osProfiles.id, id)).limit(1)).length) throw new AppError("NOT_FOUND", `OS profile ${id} does not exist`);
    await checkName(store, tx, input.name, id);
    await tx.update(osProfiles).set({ ...columns(input), updatedAt: new Date() }).where(eq(osProfiles.id, id));
    await recordStoreEvent(store, tx, { actor, machineId: null, kind: "os-profile.updated", message: `OS profile ${input.name} updated`, payload: { profileId: id } });
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
}

/** Machines keep their place but lose the profile. @throws AppError NOT_FOUND, MACHINE_BUSY (a machine deploys with it) */
export async function deleteProfile(d: Domain, id: number, actor: Actor): Promise<void> {
  const store = storeOf(d);
  const { osProfiles, machines } = store.t;
  await store.transaction(async (tx) => {
    const [p] = await tx.select().from(osProfiles).where(eq(osProfiles.id, id)).limit(1);
    if (!p) throw new AppError("NOT_FOUND", `OS profile ${id} does not exist`);
    const [busy] = await tx.select({ name: machines.name }).from(machines).where(and(eq(machines.osProfileId, id), eq(machines.state, "deploying"))).limit(1);
    if (busy) throw new AppError("MACHINE_BUSY", `${busy.name} is deploying with ${p.name}; wait or abort first`);
    await tx.delete(osProfiles).where(eq(osProfiles.id, id));
    await recordStoreEvent(store, tx, { actor, machineId: null, kind: "os-profile.deleted", message: `OS profile ${p.name} deleted`, payload: { profileId: id } });
  });
  d.bus.publish({ type: "os-profile.changed", profileId: id });
}
