/**
 * Point a running Rackhand at a virtual rack, through its tRPC API as an operator in the browser would:
 * netboot settings (managed dnsmasq on the rack's provisioning network), a rack drawn for the VMs, an OS profile
 * for the stand-in image, and each VM enrolled with its BMC, then managed (BMC verified) and provided.
 * Idempotent: machines, rack and profile that already exist (by name) are reused, BMC ports updated.
 */
import type { RackhandClient } from "./client";
import type { RackState, VirtualNode } from "./rack";

export interface ProvisionOptions {
  /** Rackhand's HTTP port (the VMs reach it on the rack's host address). */
  port: number;
  rackName?: string;
  profileName?: string;
  image: { url: string; sha256: string; rootPartition: number };
  /**
   * A UEFI stand-in image for the rack's UEFI and Secure Boot VMs (profile `<profileName> (UEFI)`); without it
   * every machine gets `image`.
   */
  uefiImage?: { url: string; sha256: string; rootPartition: number };
  /** Leave the machines enrolled (the lab shows the full lifecycle) or provide them for deploys (tests). */
  provide?: boolean;
  /** The machines' firmware setting (default: left as it is, auto when enrolled). */
  firmware?: "auto" | "bios" | "uefi";
  /** Where the agent runs (netboot setting; "debian" needs the artifacts' rootfs.tar.zst). */
  agentEnvironment?: "busybox" | "debian";
  log?: (line: string) => void;
}

export interface ProvisionedNode {
  node: VirtualNode;
  machineId: number;
}

export async function provisionRack(c: RackhandClient, rack: RackState, o: ProvisionOptions): Promise<{ rackId: number; profileId: number; machines: ProvisionedNode[] }> {
  const log = o.log ?? (() => undefined);
  const httpBaseUrl = `http://${rack.hostAddress}:${o.port}`;
  await c.netboot.saveSettings.mutate({
    mode: "managed",
    interface: rack.dhcpInterface,
    serverAddress: rack.dhcpAddress,
    rangeStart: `${rack.net}.100`,
    rangeEnd: `${rack.net}.200`,
    netmask: "255.255.255.0",
    gateway: rack.hostAddress,
    dnsServers: [],
    leaseTimeS: 3600,
    httpBaseUrl,
    ipv6RouterAdvertisements: true,
    dnsPort: 0,
    agentEnvironment: o.agentEnvironment ?? "busybox",
  });
  log(`netboot: managed dnsmasq on ${rack.dhcpInterface} (${rack.dhcpAddress}), boot files from ${httpBaseUrl}`);

  const rackName = o.rackName ?? "virtual-rack";
  const rackId = (await c.racks.list.query()).find((r) => r.name === rackName)?.id ?? (await c.racks.create.mutate({ name: rackName, site: "lab", heightU: 12 })).id;

  const profileName = o.profileName ?? "Rackhand stand-in OS";
  const profileId = await imageProfile(c, profileName, `${httpBaseUrl}/boot/${o.image.url}`, o.image, o.uefiImage ? "bios" : undefined);
  const uefiProfileId = o.uefiImage ? await imageProfile(c, `${profileName} (UEFI)`, `${httpBaseUrl}/boot/${o.uefiImage.url}`, o.uefiImage, "uefi") : null;

  const out: ProvisionedNode[] = [];
  for (const node of rack.nodes) {
    const bmc = { driver: "ipmitool" as const, address: node.bmc.address, port: node.bmc.port, username: node.bmc.username, password: node.bmc.password };
    // The stand-in OS has no udev renaming: its NIC is eth0. configure_network writes this static configuration.
    const network = { ifname: "eth0", prefix: 24, gateway: rack.hostAddress };
    // The operator knows the hardware: UEFI VMs (with or without Secure Boot) get boot devices with the EFI flag.
    // The rack's firmware per VM, unless the caller sets one for every machine.
    const firmware = o.firmware ?? ((node.firmware ?? "bios") === "bios" ? ("bios" as const) : ("uefi" as const));
    const osProfileId = uefiProfileId !== null && (node.firmware ?? "bios") !== "bios" ? uefiProfileId : profileId;
    const found = (await c.machines.list.query({ q: node.name, pageSize: 50 })).rows.find((r) => r.name === node.name);
    let id: number;
    if (found) {
      id = found.id;
      await c.machines.update.mutate({ id, rackId, uPosition: node.index * 2 - 1, bootMac: node.mac, ip: node.ip, network, bmc, osProfileId, firmware });
    } else {
      id = (await c.machines.enroll.mutate({ name: node.name, rackId, uPosition: node.index * 2 - 1, uHeight: 1, bootMac: node.mac, ip: node.ip, network, bmc, osProfileId, firmware })).id;
    }
    const state = (await c.machines.get.query({ id })).state;
    if (state === "enrolled") await c.machines.action.mutate({ id, action: "manage" });
    if (o.provide && ["enrolled", "manageable"].includes(state)) await c.machines.action.mutate({ id, action: "provide" });
    log(`${node.name}: machine ${id}, ${node.firmware ?? "bios"}, profile ${osProfileId}, MAC ${node.mac}, IP ${node.ip}, BMC 127.0.0.1:${node.bmc.port}`);
    out.push({ node, machineId: id });
  }
  return { rackId, profileId, machines: out };
}

/** Create or update (by name) the image profile of one stand-in image; `firmware` marks what it boots with. */
async function imageProfile(c: RackhandClient, name: string, imageUrl: string, image: { sha256: string; rootPartition: number }, firmware?: "bios" | "uefi"): Promise<number> {
  const fields = {
    name,
    kind: "image" as const,
    osFamily: "debian" as const,
    imageUrl,
    imageSha256: image.sha256,
    imageFormat: "raw.gz" as const,
    // The image's root file system; configure_network writes the machine's static network files there.
    options: { netConfig: "ifupdown" as const, rootPartition: `/dev/vda${image.rootPartition}`, ...(firmware && { firmware }) },
  };
  const existing = (await c.osProfiles.list.query()).find((p) => p.name === name);
  if (existing) {
    await c.osProfiles.update.mutate({ id: existing.id, ...fields });
    return existing.id;
  }
  return (await c.osProfiles.create.mutate(fields)).id;
}
