/**
 * Learns each machine's boot firmware from its DHCP requests, as the managed dnsmasq logs them (log-dhcp):
 *   "<xid> DHCPREQUEST(<if>) [<ip>] <mac>"  then  "<xid> tags: known, arch7, efi64, <if>"
 * The arch* / efihttp tags come from the client-architecture rules (option 93) of dhcpBootLines. A request
 * without option 93 (the RAM disk's own DHCP client, an installed OS) says nothing about the firmware and is
 * ignored. What is learned lands in machines.boot_firmware / boot_arch / boot_seen_at (shown in the UI; the
 * per-machine `firmware` setting overrides it).
 */
import { eq } from "drizzle-orm";
import type { BootFirmware } from "../../lib/schemas";
import type { Domain } from "../context";
import { storeOf } from "../db/store";

export interface BootSighting {
  mac: string;
  firmware: BootFirmware;
  /** DHCP option 93: 0 BIOS, 7/9 UEFI x86-64, 16 UEFI x86-64 HTTP Boot. */
  arch: number;
  /** The request came from iPXE (user class iPXE / option 175). */
  ipxe: boolean;
}

// Anchored at the line start: a client-chosen name logged inside another line cannot pose as a request.
const PREFIX = String.raw`^(?:dnsmasq-dhcp(?:\[\d+\])?: )?`;
const REQ = new RegExp(PREFIX + String.raw`(\d+) DHCP(?:DISCOVER|REQUEST)\([^)]*\) (?:\d+\.\d+\.\d+\.\d+ )?([0-9a-f]{2}(?::[0-9a-f]{2}){5}) *$`);
const TAGS = new RegExp(PREFIX + String.raw`(\d+) tags: ([a-z0-9_., -]*)$`, "i");
const ARCH_TAGS: Record<string, number> = { arch0: 0, arch7: 7, arch9: 9, efihttp: 16 };

/** Parses dnsmasq's log lines; calls `onSighting` for each request that carried a client architecture. */
export class DhcpFirmwareObserver {
  private readonly pending = new Map<string, string>();

  constructor(private readonly onSighting: (s: BootSighting) => void) {}

  line(line: string): void {
    const r = REQ.exec(line);
    if (r) {
      if (this.pending.size > 1000) this.pending.clear(); // xids whose tags line never came
      this.pending.set(r[1]!, r[2]!);
      return;
    }
    const t = TAGS.exec(line);
    if (!t) return;
    const mac = this.pending.get(t[1]!);
    if (!mac) return;
    this.pending.delete(t[1]!);
    const tags = t[2]!.split(",").map((s) => s.trim());
    const arch = tags.map((x) => ARCH_TAGS[x]).find((a) => a !== undefined);
    if (arch === undefined) return;
    this.onSighting({ mac, arch, firmware: arch === 0 ? "bios" : "uefi", ipxe: tags.includes("ipxe") });
  }
}

/**
 * Store a sighting on the machine that owns the MAC (any of its NICs). Writes only when something changed
 * or the last sighting is older than a minute, so a burst of DISCOVER/REQUEST costs one write.
 * @returns the machine id when it was updated
 */
export async function recordBootSighting(d: Domain, s: BootSighting, now = new Date()): Promise<number | null> {
  const store = storeOf(d);
  const { machines, nics } = store.t;
  const [row] = await store.db
    .select({ id: machines.id, fw: machines.bootFirmware, arch: machines.bootArch, at: machines.bootSeenAt })
    .from(nics)
    .innerJoin(machines, eq(machines.id, nics.machineId))
    .where(eq(nics.mac, s.mac))
    .limit(1);
  if (!row) return null;
  if (row.fw === s.firmware && row.arch === s.arch && row.at && now.getTime() - row.at.getTime() < 60_000) return null;
  const [m] = await store.db.update(machines).set({ bootFirmware: s.firmware, bootArch: s.arch, bootSeenAt: now }).where(eq(machines.id, row.id)).returning();
  if (!m) return null; // deleted in between
  if (row.fw !== s.firmware || row.arch !== s.arch) {
    d.log.info(`machine ${row.id} boots ${s.firmware === "uefi" ? "UEFI" : "BIOS"} (client architecture ${s.arch}${s.ipxe ? ", iPXE" : ""})`, { machineId: row.id, mac: s.mac });
  }
  d.bus.publish({ type: "machine.changed", machineId: m.id, name: m.name, state: m.state, powerState: m.powerState, maintenance: m.maintenance, rackId: m.rackId });
  return row.id;
}
