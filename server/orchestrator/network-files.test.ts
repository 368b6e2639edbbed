import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { createHarness, type Harness } from "../testing/harness";
import { configureNetworkParams } from "../../agent/steps/configure-network";
import { raidSpec } from "../../agent/steps/raid";
import { runScriptParams } from "../../agent/steps/run-script";
import { profileOptionsSchema } from "../../lib/netboot";
import { resolveParams, JOB_KIND_SPECS } from "./kinds";
import { stepRows } from "./job-state";
import { deployParams as planDeploy } from "./jobs";
import { addMachine, addProfile, setMachine } from "../testing/planning-fixture";

let h: Harness;
let n = 0;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

async function machineWith(profile: { osFamily: "debian" | "ubuntu" | "rhel"; options?: Record<string, unknown> }, ifname: string | null) {
  const i = ++n;
  const osProfileId = await addProfile(h, { name: `net-${i}`, kind: "image", osFamily: profile.osFamily, imageUrl: "http://10.0.0.1/img.raw.gz", options: profile.options ?? {} });
  return addMachine(h, { name: `net-m-${i}`, bootMac: `52:54:00:0e:00:${i.toString(16).padStart(2, "0")}`, ip: `10.20.0.${10 + i}`, osProfileId, ifname, prefix: 24, gateway: "10.20.0.1" });
}

/** Planned as a deploy plans it, on the harness's store. */
const deployParams = (id: number) => planDeploy(h.store, h.store.db, id);

describe("deploy params carry the installed system's network configuration", () => {
  it("renders ifupdown for Debian into etc/network/interfaces under the profile's root partition", async () => {
    const id = await machineWith({ osFamily: "debian", options: { rootPartition: "/dev/sda2" } }, "eno1");
    const { kind, params } = await deployParams(id);
    expect(kind).toBe("deploy_image");
    expect(params.rootPartition).toBe("/dev/sda2");
    const files = params.networkFiles as { path: string; content: string; mode: number }[];
    expect(files.map((f) => [f.path, f.mode])).toEqual([["/etc/network/interfaces", 0o644]]);
    expect(files[0]!.content).toMatch(/iface eno1 inet static/);
    expect(files[0]!.content).toContain(`10.20.0.${10 + n}`);
    expect(files[0]!.content).toContain("10.20.0.1");
    // The contract with the agent: the step's resolved params are what configure_network accepts.
    const spec = JOB_KIND_SPECS.deploy_image.flat().find((s) => s.name === "configure_network")!;
    const parsed = configureNetworkParams.safeParse(resolveParams(spec.params, { ...params, osFamily: "debian" }));
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
  });

  it("picks netplan for Ubuntu and NetworkManager keyfiles (0600) for RHEL; the profile may override", async () => {
    const ubuntu = (await deployParams(await machineWith({ osFamily: "ubuntu", options: { rootPartition: "/dev/vda1" } }, "ens3"))).params;
    expect((ubuntu.networkFiles as { path: string }[]).map((f) => f.path)).toEqual(["/etc/netplan/50-rackhand.yaml"]);
    const rhel = (await deployParams(await machineWith({ osFamily: "rhel", options: { rootPartition: "/dev/vda3" } }, "eth0"))).params;
    expect((rhel.networkFiles as { path: string; mode: number }[]).map((f) => [f.path, f.mode])).toEqual([
      ["/etc/NetworkManager/system-connections/eth0.nmconnection", 0o600],
    ]);
    const ifcfg = (await deployParams(await machineWith({ osFamily: "rhel", options: { rootPartition: "/dev/vda3", netConfig: "ifcfg" } }, "eth0"))).params;
    expect((ifcfg.networkFiles as { path: string }[]).map((f) => f.path)).toEqual(["/etc/sysconfig/network-scripts/ifcfg-eth0"]);
  });

  it("writes nothing when no NIC has an interface name (the image keeps DHCP)", async () => {
    const { params } = await deployParams(await machineWith({ osFamily: "debian" }, null));
    expect(params.networkFiles).toEqual([]);
  });

  it("refuses to start a deploy that has configuration to write but nowhere to write it", async () => {
    const id = await machineWith({ osFamily: "debian" }, "eno1");
    await expect(deployParams(id)).rejects.toThrowError(AppError);
    await expect(deployParams(id)).rejects.toThrow(/names no root partition/);
  });
});

describe("a bad network row refuses the deploy before it starts (issue 14)", () => {
  it("image and installer deploys name the machine, the row and the field", async () => {
    const image = await machineWith({ osFamily: "debian", options: { rootPartition: "/dev/sda2" } }, "eno1");
    await h.store.db.insert(h.store.t.nicLinks).values({ machineId: image, ifname: "bond0", kind: "bond", members: ["eno1"], bondMode: "active-backup miimon=1" });
    await expect(deployParams(image)).rejects.toThrow(/nic_links row \d+ \("bond0"\) bondMode: Bond mode is one of/);
    const inst = await addProfile(h, { name: "net-installer", kind: "installer", osFamily: "debian", kernel: "d-i/linux", initrd: "d-i/initrd.gz", template: "preseed" });
    const installer = await machineWith({ osFamily: "debian" }, "lo");
    await setMachine(h, installer, { osProfileId: inst });
    await expect(deployParams(installer)).rejects.toThrow(/nics row \d+ \("lo"\) name: "lo" is reserved/);
  });
});

describe("deploys onto software RAID", () => {
  it("a RAID profile adds the raid step before write_image, which then targets the array; the agent accepts the spec", async () => {
    const raid = { level: 1, devices: ["/dev/vda", "/dev/vdb"], name: "root" };
    const id = await machineWith({ osFamily: "debian", options: { rootPartition: "LABEL=RHROOT", raid } }, "eth0");
    const { kind, params } = await deployParams(id);
    expect(params).toMatchObject({ raid: { ...raid, metadata: "1.0" }, imageTarget: "/dev/md/root", rootPartition: "LABEL=RHROOT" });
    const rows = stepRows(1, kind, params);
    const agentSteps = rows.filter((r) => r.runner === "agent");
    expect(agentSteps.map((r) => r.name)).toEqual(["inventory", "wipe", "raid", "write_image", "configure_network"]);
    // Groups stay consecutive and the array is created before the image is written onto it.
    expect(rows.map((r) => r.group)).toEqual([...rows.map((r) => r.group)].sort((a, b) => a - b));
    const raidRow = rows.find((r) => r.name === "raid")!;
    const write = rows.find((r) => r.name === "write_image")!;
    expect(raidRow.group).toBeLessThan(write.group);
    expect(write.params).toMatchObject({ target: "/dev/md/root" });
    expect(raidSpec.safeParse((raidRow.params as { spec: unknown }).spec).success).toBe(true);
    const net = rows.find((r) => r.name === "configure_network")!;
    expect(configureNetworkParams.safeParse(net.params).success).toBe(true);
  });

  it("without RAID there is no raid step, the groups are renumbered, and write_image goes to the first disk", async () => {
    const { kind, params } = await deployParams(await machineWith({ osFamily: "debian" }, null));
    const rows = stepRows(1, kind, params);
    expect(rows.some((r) => r.name === "raid")).toBe(false);
    expect(new Set(rows.map((r) => r.group))).toEqual(new Set(Array.from({ length: Math.max(...rows.map((r) => r.group)) + 1 }, (_, g) => g)));
    expect(rows.find((r) => r.name === "write_image")!.params).toMatchObject({ target: null });
  });

  it("refuses a RAID spec with one disk or a bad device, naming the field", () => {
    expect(profileOptionsSchema.safeParse({ raid: { level: 1, devices: ["/dev/vda"] } }).error?.issues[0]?.path).toEqual(["raid", "devices"]);
    expect(profileOptionsSchema.safeParse({ raid: { level: 5, devices: ["/dev/vda", "/dev/vdb"] } }).success).toBe(false);
    expect(profileOptionsSchema.safeParse({ raid: { level: 1, devices: ["/dev/vda", "vdb; rm -rf /"] } }).success).toBe(false);
  });
});

describe("post-install scripts", () => {
  it("a profile's script becomes a run_script step after configure_network, run once, in the agent's terms", async () => {
    const postInstallScript = { script: "echo done\n", timeoutS: 120 };
    const { kind, params } = await deployParams(await machineWith({ osFamily: "debian", options: { postInstallScript } }, null));
    const rows = stepRows(1, kind, params);
    const names = rows.filter((r) => r.runner === "agent").map((r) => r.name);
    expect(names).toEqual(["inventory", "wipe", "write_image", "configure_network", "run_script"]);
    const step = rows.find((r) => r.name === "run_script")!;
    expect(step).toMatchObject({ maxAttempts: 1, params: { script: "echo done\n", interpreter: "/bin/sh", timeoutS: 120 } });
    expect(runScriptParams.safeParse(step.params).success).toBe(true);
    expect(profileOptionsSchema.safeParse({ postInstallScript: { script: "x", interpreter: "sh -c" } }).success).toBe(false);
    expect(profileOptionsSchema.safeParse({ postInstallScript: { script: "x", timeoutS: 4000 } }).success).toBe(false);
  });
});
