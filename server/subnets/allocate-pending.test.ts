/**
 * Allocation at deploy on the Store, on both databases (vitest projects `sqlite` and `postgres`): the pending
 * addresses of a machine are handed out in the transaction that plans its job; a full subnet refuses by name and
 * keeps nothing; a batch skips such a machine and keeps nothing of it. Rows are written through `h.store`
 * (server/testing/planning-fixture.ts). The router-level flows are in deploy-allocation.test.ts (SQLite).
 */
import { eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { machineNetworkSchema } from "../../lib/net-model";
import { getMachineNetworkIn, setMachineNetwork } from "../machines/network";
import { agentBootSessionIn } from "../netboot/agent-nonce";
import { createBatch } from "../orchestrator/batches";
import { deployParams } from "../orchestrator/jobs";
import { createHarness, type Harness } from "../testing/harness";
import { addMachine, addProfile, addSubnet, setMachine } from "../testing/planning-fixture";
import { allocatePending, machinesWithPendingAddresses } from "./allocate";

let h: Harness;
let profileId = 0;
let n = 0;

beforeAll(async () => {
  h = createHarness();
  profileId = await addProfile(h, {
    name: "alloc-store",
    kind: "image",
    osFamily: "debian",
    imageUrl: "http://10.0.0.1/debian.raw.zst",
    imageSha256: "ab".repeat(32),
    imageFormat: "raw.zst",
    options: { netConfig: "ifupdown", rootPartition: "/dev/vda2" },
  });
});
afterAll(() => h.close());

/** An available machine whose eno1 is auto in `v4` with no address, and whose VLAN is auto in `vlan4` (and `v6`). */
async function pendingMachine(o: { v4: number; vlan4: number; v6?: number }): Promise<number> {
  const k = ++n;
  const id = await addMachine(h, { name: `alloc-${k}`, bootMac: `52:54:00:a1:${(k >> 8).toString(16).padStart(2, "0")}:${(k & 255).toString(16).padStart(2, "0")}`, osProfileId: profileId });
  const { nics, nicLinks } = h.store.t;
  await h.store.db.update(nics).set({ ifname: "eno1", addressMode: "auto", subnetId: o.v4 }).where(eq(nics.machineId, id));
  await h.store.db
    .insert(nicLinks)
    .values({ machineId: id, ifname: `eno1.${10 + k}`, kind: "vlan", parent: "eno1", vlanId: 10 + k, addressMode: "auto", subnetId: o.vlan4, ...(o.v6 ? { ipv6Mode: "auto", subnet6Id: o.v6 } : {}) });
  return id;
}

const addressesOf = async (machineId: number) => {
  const { ipAllocations: a } = h.store.t;
  return (await h.store.db.select({ address: a.address, mode: a.mode }).from(a).where(eq(a.machineId, machineId))).map((r) => `${r.address} ${r.mode}`).sort();
};
const allocate = (id: number) => h.store.transaction((tx) => allocatePending(h.store, tx, id));

describe("allocation at deploy on the Store", () => {
  let v4 = 0;
  let v6 = 0;
  beforeAll(async () => {
    v4 = await addSubnet(h, { name: "st-v4", cidr: "10.81.0.0/24", gateway: "10.81.0.1" });
    v6 = await addSubnet(h, { name: "st-v6", cidr: "fd81::/64", gateway: "fd81::1" });
  });

  it("hands out the first free addresses, records them, and the deploy's network file carries them", async () => {
    const id = await pendingMachine({ v4, vlan4: v4, v6 });
    expect(await machinesWithPendingAddresses(h.store, h.store.db, [id, id + 1000])).toEqual(new Set([id]));
    const out = await allocate(id);
    expect(out.map((o) => o.address).sort()).toEqual(["10.81.0.2", "10.81.0.3", "fd81::2"]);
    expect(await addressesOf(id)).toEqual(["10.81.0.2 auto", "10.81.0.3 auto", "fd81::2 auto"]);
    const [nic] = await h.store.db.select().from(h.store.t.nics).where(eq(h.store.t.nics.machineId, id));
    expect(nic).toMatchObject({ ip: "10.81.0.2", prefix: 24, gateway: "10.81.0.1" });
    const { params } = await deployParams(h.store, h.store.db, id);
    const file = (params.networkFiles as { path: string; content: string }[]).find((f) => f.path === "/etc/network/interfaces")!;
    expect(file.content).toContain("address 10.81.0.2/24");
    expect(file.content).toContain("address fd81::2/64");
    expect((await machinesWithPendingAddresses(h.store, h.store.db, [id])).size).toBe(0);
    expect(await allocate(id)).toEqual([]);
  });

  it("a full subnet refuses with the machine, interface and subnet named, and nothing is kept", async () => {
    const small = await addSubnet(h, { name: "st-small", cidr: "10.82.0.0/30", gateway: "10.82.0.1" });
    const holder = await pendingMachine({ v4: small, vlan4: v4 });
    await allocate(holder); // takes 10.82.0.2, the only host address
    const id = await pendingMachine({ v4, vlan4: small, v6 });
    const { ipAllocations: a, nics, nicLinks } = h.store.t;
    const before = (await h.store.db.select().from(a)).length;
    const err = await allocate(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe("CONFLICT");
    expect((err as AppError).message).toMatch(/^alloc-\d+ cannot be deployed: eno1\.\d+ needs an IPv4 address: Subnet st-small \(10\.82\.0\.0\/30\) has no free address left$/);
    expect((await h.store.db.select().from(a)).length).toBe(before);
    expect((await h.store.db.select({ ip: nics.ip }).from(nics).where(eq(nics.machineId, id)))[0]!.ip).toBeNull();
    expect((await h.store.db.select({ ip6: nicLinks.ip6 }).from(nicLinks).where(eq(nicLinks.machineId, id)))[0]!.ip6).toBeNull();
  });

  it("a batch deploy allocates per machine; a machine that does not fit is skipped and keeps nothing", async () => {
    const tiny = await addSubnet(h, { name: "st-tiny", cidr: "10.83.0.0/30", gateway: "10.83.0.1" });
    const a = await pendingMachine({ v4, vlan4: tiny });
    const b = await pendingMachine({ v4, vlan4: tiny });
    const input = { selection: { ids: [a, b] }, kind: "deploy" as const, concurrency: 2, failureThresholdPct: 100, confirmCount: 2 };
    const r = await createBatch(h.domain, input, "user:t", { acting: [a, b].map((machineId) => ({ machineId, osProfileId: null })), skipped: [] });
    expect(r.queued).toBe(1);
    expect(r.skipped).toEqual([expect.objectContaining({ machineId: b, error: expect.stringMatching(/^alloc-\d+ cannot be deployed: eno1\.\d+ needs an IPv4 address: Subnet st-tiny .* has no free address left$/) })]);
    expect(await addressesOf(a)).toEqual(expect.arrayContaining(["10.83.0.2 auto"]));
    expect(await addressesOf(a)).toHaveLength(2);
    // b's eno1 address (from st-v4, chosen before its VLAN failed) was rolled back with its savepoint.
    expect(await addressesOf(b)).toEqual([]);
    const { jobs, nics } = h.store.t;
    expect(await h.store.db.select({ id: jobs.id }).from(jobs).where(eq(jobs.machineId, b))).toEqual([]);
    expect((await h.store.db.select({ ip: nics.ip }).from(nics).where(eq(nics.machineId, b)))[0]!.ip).toBeNull();
    const [job] = await h.store.db.select().from(jobs).where(inArray(jobs.machineId, [a]));
    expect(job).toMatchObject({ kind: "deploy_image", state: "queued" });
    expect(JSON.stringify(job!.params)).toContain("10.83.0.2/30");
  });
});

describe("the agent's boot session on the Store", () => {
  it("is the machine's latest state change while it netboots, else null", async () => {
    const id = await addMachine(h, { name: "boot-session", bootMac: "52:54:00:a2:00:01" });
    const { events } = h.store.t;
    const ev = async () => (await h.store.db.insert(events).values({ ts: new Date(), actor: "test", machineId: id, kind: "state.changed", message: "x" }).returning({ id: events.id }))[0]!.id;
    await ev();
    expect(await agentBootSessionIn(h.store, h.store.db, id)).toBeNull(); // available: boots its disk
    await setMachine(h, id, { state: "deploying" });
    const second = await ev();
    await h.store.db.insert(events).values({ ts: new Date(), actor: "test", machineId: id, kind: "machine.updated", message: "not a state change" });
    expect(await agentBootSessionIn(h.store, h.store.db, id)).toBe(second);
    expect(await agentBootSessionIn(h.store, h.store.db, id + 1000)).toBeNull();
  });
});

describe("the network editor on the Store", () => {
  it("allocates auto addresses, keeps them through an edit, and refuses a pinned address held by another machine, naming it", async () => {
    const net = await addSubnet(h, { name: "st-net", cidr: "10.85.0.0/24", gateway: "10.85.0.1" });
    const a = await addMachine(h, { name: "net-a", bootMac: "52:54:00:a6:00:01" });
    const b = await addMachine(h, { name: "net-b", bootMac: "52:54:00:a6:00:02" });
    const eno1 = (mac: string, o: Record<string, unknown>) => ({ kind: "ethernet", name: "eno1", mac, ...o });
    const netOf = (...interfaces: unknown[]) => machineNetworkSchema.parse({ interfaces });
    await setMachineNetwork(h.domain, a, netOf(eno1("52:54:00:a6:00:01", { mode: "auto", subnetId: net })), "test");
    expect(await addressesOf(a)).toEqual(["10.85.0.2 auto"]);
    // Pinning a's address on b is refused with the holder named; nothing of b's edit is kept.
    const err = await setMachineNetwork(h.domain, b, netOf(eno1("52:54:00:a6:00:02", { mode: "static", subnetId: net, ipv4: "10.85.0.2/24" })), "test").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toBe("eno1: 10.85.0.2 in subnet st-net is already held by net-a (eno1)");
    expect(await addressesOf(b)).toEqual([]);
    await setMachineNetwork(h.domain, b, netOf(eno1("52:54:00:a6:00:02", { mode: "auto", subnetId: net, mtu: 9000 })), "test");
    expect(await addressesOf(b)).toEqual(["10.85.0.3 auto"]);
    // An edit of a that keeps the interface and subnet keeps its address.
    await setMachineNetwork(h.domain, a, netOf(eno1("52:54:00:a6:00:01", { mode: "auto", subnetId: net, mtu: 1500 })), "test");
    expect(await addressesOf(a)).toEqual(["10.85.0.2 auto"]);
    const { network } = await getMachineNetworkIn(h.store, a);
    expect(network.interfaces[0]).toMatchObject({ name: "eno1", mode: "auto", ipv4: "10.85.0.2/24", gateway4: "10.85.0.1", mtu: 1500 });
  });
});
