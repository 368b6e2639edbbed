import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadNetbootSettings, storeNetbootSettings } from "../netboot/settings";
import { createHarness, type Harness } from "../testing/harness";
import { addMachine, addProfile, setMachine } from "../testing/planning-fixture";
import { deployParams as planDeploy } from "./jobs";
import { JOB_KIND_SPECS } from "./kinds";

let h: Harness;
let machineId: number;
let profileId: number;

beforeEach(async () => {
  h = createHarness();
  profileId = await addProfile(h, {
    name: "Debian 12 (agent install)",
    kind: "agent_install",
    osFamily: "debian",
    options: { username: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1zZ8pQk0b7oQ8mW1H3GQ1gOq4l6z4o2x0qYw7h3vCk ops@example"], installLayout: { swapMiB: 512 }, packages: ["htop"] },
  });
  machineId = await addMachine(h, { name: "inst-1", bootMac: "52:54:00:77:00:01", ip: "10.9.0.11", ifname: "eth0", prefix: 24, gateway: "10.9.0.1", osProfileId: profileId });
});
afterEach(() => h.close());

const debian = async () =>
  storeNetbootSettings(h.domain, { ...(await loadNetbootSettings(h.store)), agentEnvironment: "debian", proxyMode: "external", proxyUrl: "http://10.9.0.2:3142" }, "test");
const deployParams = (id: number) => planDeploy(h.store, h.store.db, id);

describe("planning an agent install", () => {
  it("refuses the busybox agent environment with a message that says what to change", async () => {
    await expect(deployParams(machineId)).rejects.toThrow(/needs the Debian agent environment .* Set Settings → Netboot → agent environment to Debian/);
  });

  it("refuses the deploy through the API at planning: no job, the machine stays available", async () => {
    await expect(h.operator.machines.action({ id: machineId, action: "deploy" })).rejects.toThrow(/needs the Debian agent environment/);
    const { jobs, machines } = h.store.t;
    expect(await h.store.db.select().from(jobs)).toEqual([]);
    expect((await h.store.db.select().from(machines).where(eq(machines.id, machineId)))[0]!.state).toBe("available");
  });

  it("plans the agent steps with the proxy, the firmware's boot loader, the user, the network files and the NIC names", async () => {
    await debian();
    const { kind, params } = await deployParams(machineId);
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

  it("passes the profile's initramfs drivers to the debootstrap step", async () => {
    await debian();
    const { osProfiles } = h.store.t;
    const [p] = await h.store.db.select().from(osProfiles).where(eq(osProfiles.id, profileId));
    await h.store.db.update(osProfiles).set({ options: { ...p!.options, initramfsDrivers: "targeted" } }).where(eq(osProfiles.id, profileId));
    expect((await deployParams(machineId)).params.initramfsDrivers).toBe("targeted");
    const step = JOB_KIND_SPECS.deploy_agent_install.flat().find((s) => s.name === "debootstrap")!;
    expect(step.params).toMatchObject({ initramfs: "$initramfsDrivers" });
  });

  it("takes GRUB for EFI with shim on a UEFI machine (set by the operator or learned from DHCP)", async () => {
    await debian();
    await setMachine(h, machineId, { bootFirmware: "uefi" });
    const { params } = await deployParams(machineId);
    expect(params.firmware).toBe("uefi");
    expect(params.packages).toEqual(expect.arrayContaining(["grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"]));
    expect(params.packages).not.toContain("grub-pc");
  });
});
