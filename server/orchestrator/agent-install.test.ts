import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jobs, machines, osProfiles } from "../db/schema";
import { transition } from "../machines/lifecycle";
import { getNetbootSettings, saveNetbootSettings } from "../netboot/settings";
import { createHarness, type Harness } from "../testing/harness";
import { deployParams } from "./jobs";
import { JOB_KIND_SPECS } from "./kinds";

let h: Harness;
let machineId: number;
let profileId: number;

beforeEach(async () => {
  h = createHarness();
  const m = await h.operator.machines.enroll({ name: "inst-1", bootMac: "52:54:00:77:00:01", ip: "10.9.0.11", network: { ifname: "eth0", prefix: 24, gateway: "10.9.0.1" } });
  machineId = m.id;
  const p = await h.operator.osProfiles.create({
    name: "Debian 12 (agent install)",
    kind: "agent_install",
    osFamily: "debian",
    options: { username: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1zZ8pQk0b7oQ8mW1H3GQ1gOq4l6z4o2x0qYw7h3vCk ops@example"], installLayout: { swapMiB: 512 }, packages: ["htop"] },
  });
  profileId = p.id;
  await h.operator.machines.update({ id: machineId, osProfileId: p.id });
});
afterEach(() => h.close());

const debian = () => saveNetbootSettings(h.domain, { ...getNetbootSettings(h.db), agentEnvironment: "debian", proxyMode: "external", proxyUrl: "http://10.9.0.2:3142" }, "test");

describe("planning an agent install", () => {
  it("refuses the busybox agent environment with a message that says what to change", () => {
    expect(() => deployParams(h.db, machineId)).toThrow(/needs the Debian agent environment .* Set Settings → Netboot → agent environment to Debian/);
  });

  it("refuses the deploy through the API at planning: no job, the machine stays available", async () => {
    await transition(h.domain, machineId, "manage", { actor: "test" });
    await transition(h.domain, machineId, "provide", { actor: "test" });
    await expect(h.operator.machines.action({ id: machineId, action: "deploy" })).rejects.toThrow(/needs the Debian agent environment/);
    expect(h.db.select().from(jobs).all()).toEqual([]);
    expect(h.db.select().from(machines).where(eq(machines.id, machineId)).get()!.state).toBe("available");
  });

  it("plans the agent steps with the proxy, the firmware's boot loader, the user, the network files and the NIC names", () => {
    debian();
    const { kind, params } = deployParams(h.db, machineId);
    expect(kind).toBe("deploy_agent_install");
    expect(params).toMatchObject({
      firmware: "bios",
      proxy: "http://10.9.0.2:3142",
      mirror: "http://deb.debian.org/debian",
      suite: "bookworm",
      initramfsDrivers: "generic",
      hostname: "inst-1",
      username: "ops",
      installLayout: { espMiB: 512, swapMiB: 512 },
      nicNames: [{ mac: "52:54:00:77:00:01", name: "eth0" }],
      kernelArgs: "console=tty0 console=ttyS0,115200n8",
    });
    expect(params.packages).toEqual(expect.arrayContaining(["linux-image-amd64", "openssh-server", "grub-pc", "htop"]));
    expect(params.packages).not.toContain("shim-signed");
    const files = params.networkFiles as { path: string; content: string }[];
    expect(files.map((f) => f.path)).toEqual(["/etc/network/interfaces"]);
    expect(files[0]!.content).toContain("address 10.9.0.11/24");
    const agentSteps = JOB_KIND_SPECS.deploy_agent_install.flat().filter((s) => s.runner === "agent").map((s) => s.name);
    expect(agentSteps).toEqual(["inventory", "clear_disks", "partition", "debootstrap", "configure_os", "bootloader"]);
  });

  it("passes the profile's initramfs drivers to the debootstrap step", () => {
    debian();
    h.db.update(osProfiles).set({ options: { ...(h.db.select().from(osProfiles).where(eq(osProfiles.id, profileId)).get()!.options as object), initramfsDrivers: "targeted" } }).where(eq(osProfiles.id, profileId)).run();
    expect(deployParams(h.db, machineId).params.initramfsDrivers).toBe("targeted");
    const step = JOB_KIND_SPECS.deploy_agent_install.flat().find((s) => s.name === "debootstrap")!;
    expect(step.params).toMatchObject({ initramfs: "$initramfsDrivers" });
  });

  it("takes GRUB for EFI with shim on a UEFI machine (set by the operator or learned from DHCP)", () => {
    debian();
    h.db.update(machines).set({ bootFirmware: "uefi" }).where(eq(machines.id, machineId)).run();
    const { params } = deployParams(h.db, machineId);
    expect(params.firmware).toBe("uefi");
    expect(params.packages).toEqual(expect.arrayContaining(["grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"]));
    expect(params.packages).not.toContain("grub-pc");
  });
});
