/**
 * Rackhand's managed dnsmasq against real DHCP/TFTP clients (DESIGN §6, issue 4 item 7): two network
 * namespaces joined by a veth pair, dnsmasq in the server namespace on the generated configuration,
 * busybox udhcpc/tftp in the client namespace. Needs root, iproute2, dnsmasq and busybox-static: missing
 * tools fail the test (scripts/install-system-deps.sh test installs them). Everything it creates is named
 * rhnb<pid>* and removed in afterAll, even when a test fails (server/testing/netns-dnsmasq.ts).
 */
import { eq } from "drizzle-orm";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteMachine, enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { createHarness, type Harness } from "../testing/harness";
import { DhcpNetns } from "../testing/netns-dnsmasq";
import { NetbootService } from "./service";
import { storeNetbootSettings } from "./settings";

const NET = "10.213.77";
const net = new DhcpNetns(`rhnb${process.pid}`, NET);
const MAC_A = "52:54:00:7b:00:01";
const MAC_B = "52:54:00:7b:00:02";
const MAC_C = "52:54:00:7b:00:03";
const MAC_D = "52:54:00:7b:00:04";
const MAC_UNKNOWN = "52:54:00:7b:00:99";

describe("managed dnsmasq serves the boot tree to real DHCP/TFTP clients", () => {
  let h: Harness;
  let nb: NetbootService;
  const lines: string[] = [];

  beforeAll(async () => {
    h = createHarness();
    net.setup(h.dataDir, { clientHost: 9 }); // a fixed client address (outside the range) for TFTP
    await storeNetbootSettings(h.domain, { mode: "managed", interface: net.devSrv, serverAddress: `${NET}.1`, rangeStart: `${NET}.100`, rangeEnd: `${NET}.150`, httpBaseUrl: `http://${NET}.1:3000` }, "test");
    const a = await enrollMachine(h.domain, { name: "node-a", bootMac: MAC_A, ip: `${NET}.51`, uHeight: 1 }, "test");
    for (const act of ["manage", "provide", "deploy"] as const) await transition(h.domain, a.id, act, { actor: "test" });
    nb = new NetbootService(h.domain, { dataDir: h.dataDir, debounceMs: 5, dnsmasqCommand: net.dnsmasqCommand, onDnsmasqLine: (l) => lines.push(l) });
    await nb.start();
    expect(nb.status().lastError).toBeNull();
    await waitFor(() => lines.some((l) => l.includes("TFTP root is")), "dnsmasq start");
  });

  afterAll(async () => {
    try {
      await nb?.stop();
    } finally {
      net.teardown();
      h?.close();
    }
  });

  /** dnsmasq's "read <netboot>/hosts" lines: at start and on every SIGHUP. */
  const hostsReads = () => lines.filter((l) => l.endsWith(` ${path.join(nb.root, "hosts")}`) || l.includes(` ${path.join(nb.root, "hosts")} `)).length;

  const dhcp = (mac: string, extra: string[] = []) => net.dhcp(mac, extra);

  async function tftp(file: string): Promise<string | null> {
    const local = path.join(h.dataDir, `tftp-${Math.random().toString(36).slice(2)}`);
    try {
      await net.inClient(["busybox", "tftp", "-g", "-r", file, "-l", local, net.serverAddress], 10_000);
      return fs.readFileSync(local, "utf8");
    } catch {
      return null; // busybox tftp exits 1 for a missing file
    } finally {
      fs.rmSync(local, { force: true });
    }
  }

  async function tftpBytes(file: string): Promise<Buffer | null> {
    const local = path.join(h.dataDir, `tftp-${Math.random().toString(36).slice(2)}`);
    try {
      await net.inClient(["busybox", "tftp", "-b", "1468", "-g", "-r", file, "-l", local, net.serverAddress], 30_000);
      return fs.readFileSync(local);
    } catch {
      return null;
    } finally {
      fs.rmSync(local, { force: true });
    }
  }

  it("gives an enrolled MAC its reserved address and boot file; its boot entry follows the machine's state", async () => {
    // The client configures no address, so it keeps no state between runs; the server answers from its reservation.
    const lease = await dhcp(MAC_A);
    expect(lease).toContain(`ip=${NET}.51 hostname=node-a siaddr=${NET}.1`);
    expect(lease).toMatch(/boot_?file=lpxelinux\.0/);
    const deploying = await tftp("pxelinux.cfg/01-52-54-00-7b-00-01");
    expect(deploying).toContain(`KERNEL http://${NET}.1:3000/boot/ramdisk/vmlinuz`);
    await transition(h.domain, 1, "succeed", { actor: "system" });
    await nb.whenIdle();
    // Deployed: no entry of its own any more; pxelinux falls back to the local-boot default.
    expect(await tftp("pxelinux.cfg/01-52-54-00-7b-00-01")).toBeNull();
    expect(await tftp("pxelinux.cfg/default")).toContain("LOCALBOOT 0");
  });

  it("serves a machine enrolled while dnsmasq runs without restarting it, and forgets it when deleted", async () => {
    const pid = nb.status().backend?.pid;
    expect(pid).toBeGreaterThan(0);
    const b = await enrollMachine(h.domain, { name: "node-b", bootMac: MAC_B, ip: `${NET}.52`, uHeight: 1 }, "test");
    await nb.whenIdle();
    await waitFor(() => lines.some((l) => l.includes("52-54-00-7b-00-02")), "inotify read of the new host file");
    expect(await dhcp(MAC_B)).toContain(`ip=${NET}.52 hostname=node-b`);
    expect(nb.status().backend?.pid).toBe(pid);
    // Enrolled boots its local disk: no per-MAC entry, iPXE's chain falls back to the default.
    expect(await tftp("ipxe/52-54-00-7b-00-02.ipxe")).toBeNull();

    const before = hostsReads();
    await deleteMachine(h.domain, b.id, "test");
    await nb.whenIdle();
    // dnsmasq only adds hosts on inotify; the SIGHUP Rackhand sends after a deletion makes it re-read its host files.
    await waitFor(() => hostsReads() > before, "SIGHUP re-read of the hosts file");
    const after = await dhcp(MAC_B);
    expect(after).toMatch(new RegExp(`ip=${NET.replaceAll(".", "\\.")}\\.1[0-4][0-9] `));
    expect(after).not.toContain("node-b");
    expect(await tftp("pxelinux.cfg/01-52-54-00-7b-00-02")).toBeNull();
    expect(nb.status().backend?.pid).toBe(pid);
  });

  it("serves a changed reservation at once, whether the NIC came with the full reconcile or was added since", async () => {
    const pid = nb.status().backend?.pid;
    const setIp = async (id: number, addr: string) => {
      const before = hostsReads();
      await h.store.db.update(h.store.t.nics).set({ ip: addr }).where(eq(h.store.t.nics.machineId, id));
      h.domain.bus.publish({ type: "machine.changed", machineId: id, name: "x", state: "enrolled", powerState: "unknown", maintenance: false, rackId: null });
      await nb.whenIdle();
      await waitFor(() => hostsReads() > before, "SIGHUP re-read of the hosts file");
    };
    // node-a is in the hosts file written at start.
    await setIp(1, `${NET}.61`);
    expect(await dhcp(MAC_A)).toContain(`ip=${NET}.61 hostname=node-a`);
    // Its old address is free at once: dnsmasq keeps a replaced entry until SIGHUP, and that stale entry made a
    // machine given .51 next get a dynamic address instead ("duplicate dhcp-host IP address"; checked by hand
    // with dnsmasq 2.90 and per-NIC files rewritten without a signal).
    const dm = await enrollMachine(h.domain, { name: "node-d", bootMac: MAC_D, ip: `${NET}.51`, uHeight: 1 }, "test");
    await nb.whenIdle();
    await waitFor(() => lines.some((l) => l.includes("52-54-00-7b-00-04")), "inotify read of node-d's host file");
    expect(await dhcp(MAC_D)).toContain(`ip=${NET}.51 hostname=node-d`);
    // node-d's lease holds .51 (the client never releases it): move it off before node-a takes .51 back.
    await setIp(dm.id, `${NET}.54`);
    expect(await dhcp(MAC_D)).toContain(`ip=${NET}.54 hostname=node-d`);
    const beforeDelete = hostsReads();
    await deleteMachine(h.domain, dm.id, "test");
    await nb.whenIdle();
    await waitFor(() => hostsReads() > beforeDelete, "SIGHUP after node-d's deletion");
    await setIp(1, `${NET}.51`);
    expect(await dhcp(MAC_A)).toContain(`ip=${NET}.51 hostname=node-a`);
    // node-c arrives by inotify (its own hosts.d file); its new address moves it to the hosts file.
    const c = await enrollMachine(h.domain, { name: "node-c", bootMac: MAC_C, ip: `${NET}.53`, uHeight: 1 }, "test");
    await nb.whenIdle();
    await waitFor(() => lines.some((l) => l.includes("52-54-00-7b-00-03")), "inotify read of the new host file");
    expect(await dhcp(MAC_C)).toContain(`ip=${NET}.53 hostname=node-c`);
    await setIp(c.id, `${NET}.63`);
    expect(await dhcp(MAC_C)).toContain(`ip=${NET}.63 hostname=node-c`);
    expect(fs.existsSync(path.join(nb.root, "hosts.d", "52-54-00-7b-00-03"))).toBe(false);
    expect(nb.status().backend?.pid).toBe(pid);
  });

  it("answers an iPXE-tagged request (option 175) with the iPXE script's URL, which chains the per-MAC script", async () => {
    const lease = await dhcp(MAC_A, ["-x", "0xaf:130101"]);
    expect(lease).toMatch(new RegExp(`boot_?file=http://${NET.replaceAll(".", "\\.")}\\.1:3000/boot/boot\\.ipxe`));
    expect(await tftp("boot.ipxe")).toContain("chain ipxe/${net0/mac:hexhyp}.ipxe || chain ipxe/default.ipxe");
    // node-a is deployed: no script of its own, the chain's fallback boots the local disk ...
    expect(await tftp("ipxe/52-54-00-7b-00-01.ipxe")).toBeNull();
    expect(await tftp("ipxe/default.ipxe")).toMatch(/^#!ipxe\n[^]*\nexit\n$/);
    // ... and once it netboots again (released: cleaning), its own script boots the agent.
    await transition(h.domain, 1, "release", { actor: "test" });
    await nb.whenIdle();
    expect(await tftp("ipxe/52-54-00-7b-00-01.ipxe")).toMatch(/^#!ipxe\n[^]*rackhand\.mode=cleaning/);
    await transition(h.domain, 1, "abort", { actor: "test" });
    await nb.whenIdle();
    expect(await tftp("ipxe/52-54-00-7b-00-01.ipxe")).toBeNull();
  });

  it("answers per client architecture: BIOS lpxelinux.0, UEFI PXE shim, UEFI HTTP Boot a URL; the loaders are Debian's files", async () => {
    const { machines } = h.store.t;
    const fw = async () => (await h.store.db.select({ firmware: machines.firmware, bootFirmware: machines.bootFirmware, bootArch: machines.bootArch }).from(machines).where(eq(machines.id, 1)))[0]!;
    expect(await dhcp(MAC_A, ["-x", "0x5d:0000"])).toMatch(/boot_?file=lpxelinux\.0/);
    await waitFor(async () => { const f = await fw(); return f.bootFirmware === "bios" && f.bootArch === 0; }, "BIOS learned from option 93");
    expect(await dhcp(MAC_A, ["-x", "0x5d:0007"])).toMatch(/boot_?file=shimx64\.efi/);
    expect(await dhcp(MAC_A, ["-x", "0x5d:0009"])).toMatch(/boot_?file=shimx64\.efi/);
    await waitFor(async () => { const f = await fw(); return f.bootFirmware === "uefi" && f.bootArch === 9; }, "UEFI learned from option 93");
    // A request without option 93 (the RAM disk's own DHCP client) leaves what was learned alone.
    await dhcp(MAC_A);
    await new Promise((r) => setTimeout(r, 300));
    expect(await fw()).toMatchObject({ bootFirmware: "uefi", bootArch: 9, firmware: "auto" });
    const http = await dhcp(MAC_A, ["-x", "0x5d:0010", "-V", "HTTPClient:Arch:00016:UNDI:003000"]);
    expect(http).toContain(`bootfile=http://${NET}.1:3000/boot/snponly.efi`);
    await waitFor(async () => (await fw()).bootArch === 16, "HTTP Boot learned");
    // Every loader arrives over TFTP byte for byte as its package ships it, with the provenance the status shows.
    const loaders = nb.status().loaders;
    expect(loaders.map((l) => l.name)).toEqual(["lpxelinux.0", "pxelinux.0", "ldlinux.c32", "undionly.kpxe", "ipxe.efi", "snponly.efi", "shimx64.efi", "grubx64.efi"]);
    for (const l of loaders) {
      expect(l.error, l.name).toBeNull();
      expect(l.version, l.name).toMatch(/^\d/);
      const got = await tftpBytes(l.name);
      expect(got && createHash("sha256").update(got).digest("hex"), l.name).toBe(l.sha256);
      expect(l.sha256).toBe(createHash("sha256").update(fs.readFileSync(l.source)).digest("hex"));
    }
    expect(loaders.find((l) => l.name === "grubx64.efi")!.package).toBe("grub-efi-amd64-signed");
    expect(loaders.find((l) => l.name === "shimx64.efi")!.package).toBe("shim-signed");
    // GRUB reads kernels over TFTP: <tftp-root>/boot is the HTTP tree.
    fs.mkdirSync(path.join(h.dataDir, "http", "ramdisk"), { recursive: true });
    fs.writeFileSync(path.join(h.dataDir, "http", "ramdisk", "probe.txt"), "over tftp\n");
    expect(await tftp("boot/ramdisk/probe.txt")).toBe("over tftp\n");
    expect(await tftp("grub/grub.cfg")).toContain('source "$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6"');
  });

  it("gives an unknown MAC a dynamic address and no other machine's boot entry", async () => {
    const lease = await dhcp(MAC_UNKNOWN);
    expect(lease).toMatch(new RegExp(`ip=${NET.replaceAll(".", "\\.")}\\.1[0-4][0-9] hostname= `));
    expect(await tftp("pxelinux.cfg/01-52-54-00-7b-00-99")).toBeNull();
    expect(await tftp("ipxe/52-54-00-7b-00-99.ipxe")).toBeNull();
    expect(await tftp("pxelinux.cfg/default")).toContain("unknown MAC, booting from local disk");
  });

  it("restarts dnsmasq when it dies", async () => {
    const pid = nb.status().backend!.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor(() => !!nb.status().backend?.pid && nb.status().backend?.pid !== pid, "restart");
    expect(nb.status().backend?.restarts).toBe(1);
    await waitFor(() => lines.filter((l) => l.includes("TFTP root is")).length >= 2, "second start");
    expect(await dhcp(MAC_A)).toContain(`ip=${NET}.51`);
  });
});

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
