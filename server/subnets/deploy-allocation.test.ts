/**
 * Allocation at deploy (issue 14): an interface in mode auto with a subnet but no address yet gets the first free
 * one in the transaction that creates the deploy's job (single action, retry, batch); a full subnet refuses the
 * deploy with the machine, interface and subnet named, and nothing is kept.
 */
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ipAllocations, jobs, machines, nicLinks, nics, osProfiles } from "../db/schema";
import { transition } from "../machines/lifecycle";
import { startBatch } from "../operator/bulk-actions";
import { expectTrpcError, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { allocatePending, machinesWithPendingAddresses } from "./allocate";

let h: Harness;
let profileId = 0;
let scratch = 0;
let n = 700;

beforeAll(async () => {
  h = createHarness();
  // Where the test machines' networks are first set up (setNetwork allocates at once), before they move to the
  // subnet a test needs with no address.
  ({ id: scratch } = await h.admin.subnets.create({ name: "dep-scratch", cidr: "10.90.0.0/24" }));
  profileId = h.db
    .insert(osProfiles)
    .values({
      name: "alloc-at-deploy",
      kind: "image",
      osFamily: "debian",
      imageUrl: "http://10.0.0.1/debian.raw.zst",
      imageSha256: "ab".repeat(32),
      imageFormat: "raw.zst",
      options: { netConfig: "ifupdown", rootPartition: "/dev/vda2" },
      createdAt: new Date(),
      updatedAt: new Date(),
    })
    .returning()
    .get().id;
});
afterAll(() => h.close());

/**
 * A machine (available, with the profile) whose eno1 is auto in `v4` and whose VLAN eno1.<vid> is auto in `v4`/`v6`,
 * with its addresses then taken away as rows from before allocation at enroll (or an import that set only the
 * subnet) have them: auto with a subnet and no address.
 */
async function pendingMachine(o: { v4: number; v6: number; vid: number; nicV6?: boolean }): Promise<number> {
  const k = ++n;
  // A fake BMC: a batch's plan skips machines it cannot boot from the network.
  const bmc = { address: `10.252.${k >> 8}.${k & 255}`, port: 623, username: "root", password: "pw", driver: "fake" as const, privilege: "ADMINISTRATOR" as const, cipherSuite: 3 };
  const m = await h.operator.machines.enroll(machineInput(k, { ip: null, osProfileId: profileId, bmc }));
  await h.operator.machines.setNetwork({
    id: m.id,
    network: {
      interfaces: [
        { kind: "ethernet", name: "eno1", mac: (await h.viewer.machines.network({ id: m.id })).bootMac!, mode: "auto", subnetId: scratch, ...(o.nicV6 ? { ipv6Mode: "auto", subnet6Id: o.v6 } : {}) },
        { kind: "vlan", name: `eno1.${o.vid}`, parent: "eno1", vlanId: o.vid, mode: "auto", subnetId: scratch, ipv6Mode: "auto", subnet6Id: o.v6 },
      ],
    },
  });
  h.db.delete(ipAllocations).where(eq(ipAllocations.machineId, m.id)).run();
  h.db.update(nics).set({ subnetId: o.v4, ip: null, prefix: null, gateway: null, ip6: null, prefix6: null }).where(eq(nics.machineId, m.id)).run();
  h.db.update(nicLinks).set({ subnetId: o.v4, ip: null, prefix: null, gateway: null, ip6: null, prefix6: null }).where(eq(nicLinks.machineId, m.id)).run();
  for (const a of ["manage", "provide"] as const) await transition(h.domain, m.id, a, { actor: "test" });
  return m.id;
}

const addressesOf = (machineId: number) =>
  h.db
    .select({ address: ipAllocations.address, mode: ipAllocations.mode })
    .from(ipAllocations)
    .where(eq(ipAllocations.machineId, machineId))
    .all()
    .map((a) => `${a.address} ${a.mode}`)
    .sort();
const jobsOf = (machineId: number) => h.db.select().from(jobs).where(eq(jobs.machineId, machineId)).all();

describe("allocation at deploy", () => {
  let v4 = 0;
  let v6 = 0;
  let small = 0;
  beforeAll(async () => {
    ({ id: v4 } = await h.admin.subnets.create({ name: "dep-v4", cidr: "10.91.0.0/24", gateway: "10.91.0.1" }));
    ({ id: v6 } = await h.admin.subnets.create({ name: "dep-v6", cidr: "fd91::/64", gateway: "fd91::1" }));
    // /30: .1 gateway, .2 the only assignable address.
    ({ id: small } = await h.admin.subnets.create({ name: "dep-small", cidr: "10.92.0.0/30", gateway: "10.92.0.1" }));
  });

  it("a deploy hands out the pending addresses with its job, and the rendered network file carries them", async () => {
    const id = await pendingMachine({ v4, v6, vid: 10 });
    expect(await machinesWithPendingAddresses(h.store, h.store.db, [id, id + 1000])).toEqual(new Set([id]));
    const { jobId } = await h.operator.machines.action({ id, action: "deploy" });
    expect(addressesOf(id)).toEqual(["10.91.0.2 auto", "10.91.0.3 auto", "fd91::2 auto"]);
    expect(h.db.select().from(nics).where(eq(nics.machineId, id)).get()).toMatchObject({ ip: "10.91.0.2", prefix: 24, gateway: "10.91.0.1" });
    expect(h.db.select().from(nicLinks).where(eq(nicLinks.machineId, id)).get()).toMatchObject({ ip: "10.91.0.3", prefix: 24, ip6: "fd91::2", prefix6: 64, gateway6: "fd91::1" });
    const job = h.db.select().from(jobs).where(eq(jobs.id, jobId!)).get()!;
    const file = (job.params as { networkFiles: { path: string; content: string }[] }).networkFiles.find((f) => f.path === "/etc/network/interfaces")!;
    expect(file.content).toContain("address 10.91.0.2/24");
    expect(file.content).toContain("address 10.91.0.3/24");
    expect(file.content).toContain("address fd91::2/64");
    expect((await machinesWithPendingAddresses(h.store, h.store.db, [id])).size).toBe(0);
    // Nothing pending: a second call hands out nothing.
    expect(await h.store.transaction((tx) => allocatePending(h.store, tx, id))).toEqual([]);
  });

  it("a full subnet refuses the deploy by name, and nothing is kept: no job, no address, state unchanged", async () => {
    const holder = await h.operator.machines.enroll(machineInput(++n, { ip: null, network: { ifname: "eno1", subnetId: small } }));
    expect(addressesOf(holder.id)).toEqual(["10.92.0.2 auto"]);
    // The NIC's IPv6 (free) is chosen before the VLAN's IPv4 (full): all or nothing.
    const id = await pendingMachine({ v4: small, v6, vid: 11, nicV6: true });
    h.db.update(nics).set({ addressMode: "none", subnetId: null }).where(eq(nics.machineId, id)).run();
    const before = h.db.select().from(ipAllocations).all().length;
    const { error } = await expectTrpcError(h.operator.machines.action({ id, action: "deploy" }), "CONFLICT");
    expect(error.message).toMatch(/^node-\d+ cannot be deployed: eno1\.11 needs an IPv4 address: Subnet dep-small \(10\.92\.0\.0\/30\) has no free address left$/);
    expect(h.db.select().from(ipAllocations).all().length).toBe(before);
    expect(h.db.select({ ip6: nics.ip6 }).from(nics).where(eq(nics.machineId, id)).get()!.ip6).toBeNull();
    expect(jobsOf(id)).toEqual([]);
    expect(h.db.select({ state: machines.state }).from(machines).where(eq(machines.id, id)).get()!.state).toBe("available");
    // Once an address is free again, the same deploy goes through.
    h.db.update(nics).set({ subnetId: null, addressMode: "dhcp", ip: null }).where(eq(nics.machineId, holder.id)).run();
    h.db.delete(ipAllocations).where(eq(ipAllocations.machineId, holder.id)).run();
    const ok = await h.operator.machines.action({ id, action: "deploy" });
    expect(ok.jobId).toBeGreaterThan(0);
    expect(addressesOf(id)).toEqual(["10.92.0.2 auto", "fd91::3 auto", "fd91::4 auto"]);
  });

  it("a retry of a failed deploy allocates what is pending again", async () => {
    const id = await pendingMachine({ v4, v6, vid: 12 });
    const first = await h.operator.machines.action({ id, action: "deploy" });
    h.db.update(jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(jobs.id, first.jobId!)).run();
    await transition(h.domain, id, "fail", { actor: "system", reason: "test" });
    // The VLAN's addresses went away meanwhile (e.g. a subnet edit): the retry gets new ones.
    h.db.delete(ipAllocations).where(and(eq(ipAllocations.machineId, id))).run();
    h.db.update(nicLinks).set({ ip: null, ip6: null }).where(eq(nicLinks.machineId, id)).run();
    h.db.update(nics).set({ ip: null }).where(eq(nics.machineId, id)).run();
    const retry = await h.operator.machines.action({ id, action: "retry" });
    expect(retry.to).toBe("deploying");
    expect(addressesOf(id)).toHaveLength(3);
    const params = h.db.select().from(jobs).where(eq(jobs.id, retry.jobId!)).get()!.params as { networkFiles: { content: string }[] };
    for (const a of addressesOf(id)) expect(params.networkFiles[0]!.content).toContain(`address ${a.split(" ")[0]}/`);
  });

  it("a batch deploy allocates per machine; a machine whose subnet is full is skipped with the reason and keeps nothing", async () => {
    const { id: tiny } = await h.admin.subnets.create({ name: "dep-tiny", cidr: "10.93.0.0/30", gateway: "10.93.0.1" });
    const a = await pendingMachine({ v4: tiny, v6, vid: 13 });
    const b = await pendingMachine({ v4: tiny, v6, vid: 14 });
    // Each needs two IPv4 addresses (NIC and VLAN) from a subnet with one: both are skipped, the batch is refused.
    await expect(startBatch(h.domain, { selection: { ids: [a, b] }, kind: "deploy", concurrency: 2, failureThresholdPct: 100, confirmCount: 2 }, "user:t")).rejects.toThrow(
      /cannot be deployed: eno1\.1[34] needs an IPv4 address: Subnet dep-tiny \(10\.93\.0\.0\/30\) has no free address left/,
    );
    expect([...addressesOf(a), ...addressesOf(b)]).toEqual([]);
    // Move a's NIC to the big subnet: a fits (NIC from dep-v4, VLAN from dep-tiny), b does not.
    h.db.update(nics).set({ subnetId: v4 }).where(eq(nics.machineId, a)).run();
    const r = await startBatch(h.domain, { selection: { ids: [a, b] }, kind: "deploy", concurrency: 2, failureThresholdPct: 100, confirmCount: 2 }, "user:t");
    expect(r.queued).toBe(1);
    expect(r.skipped).toEqual([expect.objectContaining({ machineId: b, error: expect.stringMatching(/has no free address left$/) })]);
    expect(addressesOf(a)).toEqual(expect.arrayContaining(["10.93.0.2 auto"]));
    expect(addressesOf(a)).toHaveLength(3);
    expect(addressesOf(b)).toEqual([]);
    expect(jobsOf(b)).toEqual([]);
  });
});
