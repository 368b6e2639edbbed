/**
 * Rows for deploy-planning tests written through the harness's Store (`h.store`), so one test file runs on SQLite
 * and on PostgreSQL (vitest project `postgres`): server/machines, which enrolls through the API, is not on the Store
 * in this slice. Plain inserts, as an enrolled machine has them; the tests then call the planning code itself.
 */
import { eq } from "drizzle-orm";
import type { MachineState } from "../../lib/lifecycle";
import type { Harness } from "./harness";

type Profile = Harness["store"]["t"]["osProfiles"]["$inferInsert"];

/** An OS profile. Returns its id. */
export async function addProfile(h: Harness, p: Omit<Profile, "createdAt" | "updatedAt">): Promise<number> {
  const t = h.store.t.osProfiles;
  const [row] = await h.store.db
    .insert(t)
    .values({ ...p, createdAt: new Date(), updatedAt: new Date() })
    .returning({ id: t.id });
  return row!.id;
}

/** A machine with its boot NIC (named `ifname`, or unnamed). Returns its id. */
export async function addMachine(
  h: Harness,
  m: {
    name: string;
    bootMac: string;
    ip?: string | null;
    ifname?: string | null;
    prefix?: number | null;
    gateway?: string | null;
    osProfileId?: number | null;
    state?: MachineState;
  },
): Promise<number> {
  const { machines, nics } = h.store.t;
  const now = new Date();
  const [row] = await h.store.db
    .insert(machines)
    .values({ name: m.name, state: m.state ?? "available", osProfileId: m.osProfileId ?? null, createdAt: now, updatedAt: now })
    .returning({ id: machines.id });
  await h.store.db.insert(nics).values({ machineId: row!.id, mac: m.bootMac, isBoot: true, ip: m.ip ?? null, ifname: m.ifname ?? null, prefix: m.prefix ?? null, gateway: m.gateway ?? null });
  return row!.id;
}

/** Update a machine's columns. */
export async function setMachine(h: Harness, id: number, set: Partial<Harness["store"]["t"]["machines"]["$inferInsert"]>): Promise<void> {
  const { machines } = h.store.t;
  await h.store.db.update(machines).set(set).where(eq(machines.id, id));
}

/** A subnet. Returns its id. */
export async function addSubnet(h: Harness, s: { name: string; cidr: string; gateway?: string | null }): Promise<number> {
  const t = h.store.t.subnets;
  const now = new Date();
  const family = s.cidr.includes(":") ? 6 : 4;
  const [row] = await h.store.db
    .insert(t)
    .values({ name: s.name, cidr: s.cidr, family, gateway: s.gateway ?? null, createdAt: now, updatedAt: now })
    .returning({ id: t.id });
  return row!.id;
}
