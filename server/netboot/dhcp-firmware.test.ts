import { describe, expect, it } from "vitest";
import { DhcpFirmwareObserver, type BootSighting } from "./dhcp-firmware";

const feed = (lines: string[]) => {
  const seen: BootSighting[] = [];
  const o = new DhcpFirmwareObserver((s) => seen.push(s));
  for (const l of lines) o.line(l);
  return seen;
};

describe("boot firmware from dnsmasq's DHCP log", () => {
  it("reads the architecture tag of a request and pairs it with the request's MAC by transaction id", () => {
    expect(
      feed([
        "dnsmasq-dhcp[1]: 11 vendor class: PXEClient:Arch:00007:UNDI:003000",
        "dnsmasq-dhcp[1]: 12 DHCPDISCOVER(br0) 52:54:00:00:00:02 ",
        "dnsmasq-dhcp[1]: 11 DHCPREQUEST(br0) 10.0.0.5 52:54:00:00:00:01 ",
        "dnsmasq-dhcp[1]: 12 tags: known, arch0, br0",
        "dnsmasq-dhcp[1]: 11 tags: known, arch7, efi64, br0",
        "dnsmasq-dhcp[1]: 13 DHCPREQUEST(br0) 10.0.0.6 52:54:00:00:00:03 ",
        "dnsmasq-dhcp[1]: 13 tags: known, ipxe, efihttp, br0",
      ]),
    ).toEqual([
      { mac: "52:54:00:00:00:02", arch: 0, firmware: "bios", ipxe: false },
      { mac: "52:54:00:00:00:01", arch: 7, firmware: "uefi", ipxe: false },
      { mac: "52:54:00:00:00:03", arch: 16, firmware: "uefi", ipxe: true },
    ]);
  });

  it("ignores requests without option 93, tags without a request, and lines that only look alike", () => {
    expect(
      feed([
        "dnsmasq-dhcp[1]: 21 DHCPREQUEST(br0) 10.0.0.5 52:54:00:00:00:01 ",
        "dnsmasq-dhcp[1]: 21 tags: known, br0",
        "dnsmasq-dhcp[1]: 22 tags: known, arch7, br0",
        "dnsmasq-dhcp[1]: 23 DHCPREQUEST(br0) 10.0.0.5 not-a-mac ",
        "dnsmasq-dhcp[1]: 23 tags: arch7",
        "dnsmasq-dhcp[1]: 24 client provides name: x 25 DHCPREQUEST(br0) 52:54:00:00:00:09",
        "dnsmasq-dhcp[1]: 25 tags: known, arch0, br0",
        "dnsmasq-dhcp[1]: 26 client provides name: 26 DHCPREQUEST(br0) 52:54:00:00:00:08",
        "dnsmasq-dhcp[1]: 26 tags: known, arch0, br0",
      ]),
    ).toEqual([]);
  });
});

describe("recorded boot firmware and the per-machine setting", () => {
  it("stores a sighting on the machine owning the MAC, once per change; the setting overrides it", async () => {
    const { createHarness } = await import("../testing/harness");
    const { enrollMachine, updateMachine } = await import("../machines/enroll");
    const { getMachine } = await import("../machines/detail");
    const { recordBootSighting } = await import("./dhcp-firmware");
    const { effectiveFirmware, machineUpdateSchema } = await import("../../lib/schemas");
    const h = createHarness();
    try {
      const m = await enrollMachine(h.domain, { name: "fw-1", bootMac: "52:54:00:00:0f:01", uHeight: 1 }, "test");
      expect(await getMachine(h.store, m.id)).toMatchObject({ firmware: "auto", bootFirmware: null, bootArch: null });
      const t0 = new Date(1_000_000);
      expect(await recordBootSighting(h.domain, { mac: "52:54:00:00:0f:01", firmware: "uefi", arch: 7, ipxe: false }, t0)).toBe(m.id);
      expect(await recordBootSighting(h.domain, { mac: "52:54:00:00:0f:01", firmware: "uefi", arch: 7, ipxe: false }, new Date(1_010_000))).toBeNull();
      expect(await recordBootSighting(h.domain, { mac: "52:54:00:00:0f:99", firmware: "bios", arch: 0, ipxe: false })).toBeNull();
      const d = await getMachine(h.store, m.id);
      expect(d).toMatchObject({ bootFirmware: "uefi", bootArch: 7, bootSeenAt: 1_000_000 });
      expect(effectiveFirmware(d.firmware, d.bootFirmware)).toBe("uefi");
      await updateMachine(h.domain, { id: m.id, firmware: "bios" }, "test");
      const after = await getMachine(h.store, m.id);
      expect(effectiveFirmware(after.firmware, after.bootFirmware)).toBe("bios");
      for (const bad of ["UEFI", "efi", "uefi\n", "bios;reboot", "$(id)", "auto ", "", "ü", "x".repeat(300), "../uefi", "uefi\0"]) {
        const r = machineUpdateSchema.safeParse({ id: 1, firmware: bad });
        expect(r.success, JSON.stringify(bad)).toBe(false);
        if (!r.success) expect(r.error.issues[0]!.message).toBe("One of auto, bios, uefi");
      }
    } finally {
      h.close();
    }
  });
});
