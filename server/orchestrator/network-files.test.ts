import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { nics, osProfiles } from "../db/schema";
import { createHarness, type Harness } from "../testing/harness";
import { configureNetworkParams } from "../../agent/steps/configure-network";
import { resolveParams, JOB_KIND_SPECS } from "./kinds";
import { deployParams } from "./jobs";

let h: Harness;
let n = 0;
beforeAll(() => {
  h = createHarness();
});
afterAll(() => h.close());

function machineWith(profile: { osFamily: "debian" | "ubuntu" | "rhel"; options?: Record<string, unknown> }, ifname: string | null) {
  const i = ++n;
  const p = h.db
    .insert(osProfiles)
    .values({ name: `net-${i}`, kind: "image", osFamily: profile.osFamily, imageUrl: "http://10.0.0.1/img.raw.gz", options: profile.options ?? {}, createdAt: new Date(), updatedAt: new Date() })
    .returning()
    .get();
  return h.operator.machines
    .enroll({ name: `net-m-${i}`, bootMac: `52:54:00:0e:00:${i.toString(16).padStart(2, "0")}`, ip: `10.20.0.${10 + i}`, osProfileId: p.id })
    .then(({ id }) => {
      h.db.update(nics).set({ ifname, prefix: 24, gateway: "10.20.0.1", mtu: 9000 }).where(eq(nics.machineId, id)).run();
      return id;
    });
}

describe("deploy params carry the installed system's network configuration", () => {
  it("renders ifupdown for Debian into etc/network/interfaces under the profile's root partition", async () => {
    const id = await machineWith({ osFamily: "debian", options: { rootPartition: "/dev/sda2" } }, "eno1");
    const { kind, params } = deployParams(h.db, id);
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
    const ubuntu = deployParams(h.db, await machineWith({ osFamily: "ubuntu", options: { rootPartition: "/dev/vda1" } }, "ens3")).params;
    expect((ubuntu.networkFiles as { path: string }[]).map((f) => f.path)).toEqual(["/etc/netplan/50-rackhand.yaml"]);
    const rhel = deployParams(h.db, await machineWith({ osFamily: "rhel", options: { rootPartition: "/dev/vda3" } }, "eth0")).params;
    expect((rhel.networkFiles as { path: string; mode: number }[]).map((f) => [f.path, f.mode])).toEqual([
      ["/etc/NetworkManager/system-connections/eth0.nmconnection", 0o600],
    ]);
    const ifcfg = deployParams(h.db, await machineWith({ osFamily: "rhel", options: { rootPartition: "/dev/vda3", netConfig: "ifcfg" } }, "eth0")).params;
    expect((ifcfg.networkFiles as { path: string }[]).map((f) => f.path)).toEqual(["/etc/sysconfig/network-scripts/ifcfg-eth0"]);
  });

  it("writes nothing when no NIC has an interface name (the image keeps DHCP)", async () => {
    const { params } = deployParams(h.db, await machineWith({ osFamily: "debian" }, null));
    expect(params.networkFiles).toEqual([]);
  });

  it("refuses to start a deploy that has configuration to write but nowhere to write it", async () => {
    const id = await machineWith({ osFamily: "debian" }, "eno1");
    expect(() => deployParams(h.db, id)).toThrowError(AppError);
    expect(() => deployParams(h.db, id)).toThrow(/names no root partition/);
  });
});
