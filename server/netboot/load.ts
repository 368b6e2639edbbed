/** Reads what the boot tree depends on from the database: machines, their NICs, profiles, install sessions. */
import { and, desc, eq, inArray, max } from "drizzle-orm";
import { INSTALL_TEMPLATES, NETBOOT_STATES, profileOptionsSchema, type InstallTemplate } from "../../lib/netboot";
import { osProfiles } from "../db/schema";
import type { Store } from "../db/store";
import type { MachineBootRow, ProfileBoot } from "./tree";

/**
 * All machines (ids omitted) or the given ones, through the Store (either database); deleted ids are simply absent
 * from the result. Reads outside a transaction: the tree is derived state, made again from the next event.
 */
export async function loadBootRows(store: Store, ids?: number[]): Promise<MachineBootRow[]> {
  const { machines, nics, osProfiles, jobs, steps } = store.t;
  const db = store.db;
  const ms = await db
    .select({ id: machines.id, name: machines.name, state: machines.state, profileId: machines.osProfileId })
    .from(machines)
    .where(ids ? inArray(machines.id, ids) : undefined);
  if (!ms.length) return [];
  const nicRows = await db
    .select({ machineId: nics.machineId, mac: nics.mac, ip: nics.ip, isBoot: nics.isBoot })
    .from(nics)
    .where(ids ? inArray(nics.machineId, ids) : undefined)
    .orderBy(nics.machineId, desc(nics.isBoot), nics.id);
  const byMachine = new Map<number, MachineBootRow["nics"]>();
  for (const n of nicRows) {
    let l = byMachine.get(n.machineId);
    if (!l) byMachine.set(n.machineId, (l = []));
    l.push({ mac: n.mac, ip: n.ip, isBoot: n.isBoot });
  }
  const profiles = new Map<number, ProfileBoot>();
  for (const p of await db.select().from(osProfiles)) profiles.set(p.id, toProfileBoot(p));
  // Only machines that netboot need their session (the event that moved them into the current state): the install
  // token and the agent nonce are derived from it.
  const netbooting = ms.filter((m) => (NETBOOT_STATES as readonly string[]).includes(m.state)).map((m) => m.id);
  const sessions = await bootSessionsIn(store, netbooting);
  // A running job's latest boot-target request (set_boot_target steps that started) overrides the state's default.
  const jobTargets = new Map<number, "agent" | "installer" | "disk">();
  for (let i = 0; i < netbooting.length; i += 500) {
    const rows = await db
      .select({ machineId: jobs.machineId, stepId: steps.id, params: steps.params })
      .from(steps)
      .innerJoin(jobs, eq(jobs.id, steps.jobId))
      .where(
        and(
          inArray(jobs.machineId, netbooting.slice(i, i + 500)),
          eq(jobs.state, "running"),
          eq(steps.name, "set_boot_target"),
          inArray(steps.state, ["running", "succeeded"]),
        ),
      )
      .orderBy(steps.id);
    for (const r of rows) {
      const t = (r.params)?.target;
      if (t === "agent" || t === "installer" || t === "disk") jobTargets.set(r.machineId, t);
    }
  }
  return ms.map((m) => ({
    id: m.id,
    name: m.name,
    state: m.state,
    nics: byMachine.get(m.id) ?? [],
    profile: m.profileId != null ? (profiles.get(m.profileId) ?? null) : null,
    sessionId: sessions.get(m.id) ?? null,
    jobBootTarget: jobTargets.get(m.id) ?? null,
  }));
}

/** machineId → id of its latest state.changed event (its current boot session), for the given machines. */
export async function bootSessionsIn(store: Store, ids: number[]): Promise<Map<number, number>> {
  const { events } = store.t;
  const sessions = new Map<number, number>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await store.db
      .select({ machineId: events.machineId, id: max(events.id) })
      .from(events)
      .where(and(inArray(events.machineId, ids.slice(i, i + 500)), eq(events.kind, "state.changed")))
      .groupBy(events.machineId);
    for (const r of rows) if (r.machineId != null && r.id != null) sessions.set(r.machineId, Number(r.id));
  }
  return sessions;
}

export function toProfileBoot(p: typeof osProfiles.$inferSelect): ProfileBoot {
  const opts = profileOptionsSchema.safeParse(p.options ?? {});
  return {
    id: p.id,
    kind: p.kind,
    kernel: p.kernel,
    initrd: p.initrd,
    kernelArgs: p.kernelArgs,
    template: (INSTALL_TEMPLATES as readonly string[]).includes(p.template ?? "") ? (p.template as InstallTemplate) : null,
    mirror: opts.success ? (opts.data.mirror ?? null) : null,
  };
}
