/**
 * What a retry of a failed deploy runs, and what its plan shows: every deploy kind (image, installer, agent install,
 * reinstall) is planned again from the machine's current OS profile; the agent-install steps have their own words.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobs, osProfiles } from "../db/schema";
import { transition } from "../machines/lifecycle";
import { loadNetbootSettings, storeNetbootSettings } from "../netboot/settings";
import { driveTo, machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";

let h: Harness;
let profileId: number;
const fakeBmc = { driver: "fake" as const, address: "127.0.0.1", username: "admin", password: "secret" };
const AGENT_INSTALL_CHANGES = ["Inventory read", "Disks cleared (RAID, LVM, partitions)", "Disk partitioned", "Debian installed by the agent: agent-install", "System configured (network, user, SSH keys)", "Boot loader installed"];

beforeAll(async () => {
  h = createHarness();
  await storeNetbootSettings(h.domain, { ...await loadNetbootSettings(h.store), agentEnvironment: "debian", proxyMode: "external", proxyUrl: "http://10.9.0.2:3142" }, "test");
  ({ id: profileId } = await h.operator.osProfiles.create({ name: "agent-install", kind: "agent_install", osFamily: "debian", options: { username: "ops", initramfsDrivers: "generic" } }));
});
afterAll(() => h.close());

async function failedAgentInstall(k: number): Promise<{ id: number; jobId: number }> {
  const { id } = await h.operator.machines.enroll(machineInput(k, { name: `retry-${k}`, bmc: fakeBmc, osProfileId: profileId }));
  await driveTo(h.domain, id, "available");
  const { jobId } = await h.operator.machines.action({ id, action: "deploy" });
  expect(h.db.select().from(jobs).where(eq(jobs.id, jobId!)).get()).toMatchObject({ kind: "deploy_agent_install", params: expect.objectContaining({ initramfsDrivers: "generic" }) });
  h.db.update(jobs).set({ state: "failed", finishedAt: new Date() }).where(eq(jobs.id, jobId!)).run();
  await transition(h.domain, id, "fail", { actor: "system", reason: "debootstrap failed" });
  return { id, jobId: jobId! };
}

describe("retrying an agent install", () => {
  it("the deploy plan of an agent-install profile lists the agent's install steps, not an image write", async () => {
    const { id } = await h.operator.machines.enroll(machineInput(811, { name: "plan-ai", bmc: fakeBmc, osProfileId: profileId }));
    await driveTo(h.domain, id, "available");
    const p = await h.operator.machines.plan({ selection: { ids: [id] }, op: { type: "action", action: "deploy" } });
    expect(p.rows[0]).toMatchObject({ act: true, to: "deploying", profile: "agent-install" });
    expect(p.rows[0]!.changes).toEqual(expect.arrayContaining(AGENT_INSTALL_CHANGES));
    expect(p.rows[0]!.changes.some((c) => c.startsWith("Image written"))).toBe(false);
  });

  it("is planned again from the profile as it is now (an option changed after the failure reaches the new job)", async () => {
    const { id, jobId } = await failedAgentInstall(812);
    const options = h.db.select().from(osProfiles).where(eq(osProfiles.id, profileId)).get()!.options as Record<string, unknown>;
    h.db.update(osProfiles).set({ options: { ...options, initramfsDrivers: "targeted" } }).where(eq(osProfiles.id, profileId)).run();
    try {
      const plan = await h.operator.machines.plan({ selection: { ids: [id] }, op: { type: "action", action: "retry" } });
      expect(plan.rows[0]).toMatchObject({ act: true, to: "deploying" });
      expect(plan.rows[0]!.changes).toEqual(expect.arrayContaining(AGENT_INSTALL_CHANGES));
      const retry = await h.operator.machines.action({ id, action: "retry" });
      expect(retry.jobId).not.toBe(jobId);
      expect(h.db.select().from(jobs).where(eq(jobs.id, retry.jobId!)).get()).toMatchObject({ kind: "deploy_agent_install", params: expect.objectContaining({ initramfsDrivers: "targeted" }) });
    } finally {
      h.db.update(osProfiles).set({ options }).where(eq(osProfiles.id, profileId)).run();
    }
  });

  it("a retry without a profile any more is refused in the plan, like the other deploys", async () => {
    const { id } = await failedAgentInstall(813);
    await h.operator.machines.update({ id, osProfileId: null });
    const plan = await h.operator.machines.plan({ selection: { ids: [id] }, op: { type: "action", action: "retry" } });
    expect(plan.rows[0]).toMatchObject({ act: false, reason: "no_profile" });
  });
});
