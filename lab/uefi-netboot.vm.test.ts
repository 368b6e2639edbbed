/**
 * UEFI network boot of Rackhand's own boot tree on real firmware (QEMU q35 + OVMF, TCG), Secure Boot on:
 * the netboot service (managed dnsmasq in a namespace of this test) places Debian's shim and signed network GRUB
 * itself, answers the VM's UEFI PXE request (client architecture 7) with shimx64.efi, shim loads grubx64.efi,
 * GRUB reads grub/grub.cfg, which picks the VM's per-MAC entry by $net_default_mac, and boots Debian's signed
 * kernel over TFTP (<tftp-root>/boot = the HTTP tree) with the machine's agent arguments. A tiny initramfs prints
 * the kernel command line and Secure Boot / lockdown state on the serial console. The negative case swaps the
 * boot file for an unsigned one (iPXE's snponly.efi) on the same VM configuration: the firmware must refuse it.
 * Needs root, iproute2, dnsmasq, qemu-system-x86, ovmf, shim-signed, grub-efi-amd64-signed, ipxe, busybox-static:
 * a missing one fails the test.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRamdisk, kernelDir } from "../ramdisk/builder";
import { buildAgentBundle } from "../server/orchestrator/testing/agent-harness";
import { cpioChunks, type CpioEntry } from "../ramdisk/cpio";
import { which } from "../ramdisk/host";
import { enrollMachine } from "../server/machines/enroll";
import { transition } from "../server/machines/lifecycle";
import { storeOf } from "../server/db/store";
import { getMachine } from "../server/machines/detail";
import { NetbootService } from "../server/netboot/service";
import { storeNetbootSettings } from "../server/netboot/settings";
import { createHarness, type Harness } from "../server/testing/harness";

const OVMF = "/usr/share/OVMF";
const MARKER = "RACKHAND-UEFI-NETBOOT";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-uefi-"));
const cacheDir = path.join(os.tmpdir(), "rackhand-lab-cache");
const tag = crypto.randomBytes(2);
const P = `ru${tag.toString("hex")}`;
const NS = P;
const BR = `${P}b`;
const TAP = `${P}t`;
const NET = `10.${150 + (tag[0]! % 40)}.${tag[1]}`;
const MAC = `52:54:00:e1:${tag.toString("hex").slice(0, 2)}:${tag.toString("hex").slice(2, 4)}`;

function ip(...args: string[]) {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.error ?? r.stderr}`);
}

/** busybox initramfs: prints the marker with the command line, Secure Boot and lockdown, then powers off. */
function tinyInitrd(out: string): void {
  const bb = which("busybox");
  if (!bb) throw new Error("busybox is required (apt-get install busybox-static)");
  const init = [
    "#!/bin/busybox sh",
    "/bin/busybox mkdir -p /proc /sys /dev",
    "/bin/busybox mount -t proc proc /proc",
    "/bin/busybox mount -t sysfs sys /sys",
    "/bin/busybox mount -t securityfs sec /sys/kernel/security 2>/dev/null",
    `echo "${MARKER} cmdline=[$(/bin/busybox cat /proc/cmdline)] lockdown=[$(/bin/busybox cat /sys/kernel/security/lockdown 2>/dev/null)]" > /dev/console`,
    "/bin/busybox poweroff -f",
    "",
  ].join("\n");
  const entries: CpioEntry[] = [
    { name: "bin", kind: "dir", mode: 0o755 },
    { name: "bin/busybox", kind: "file", mode: 0o755, data: fs.readFileSync(bb) },
    { name: "init", kind: "file", mode: 0o755, data: Buffer.from(init) },
  ];
  fs.writeFileSync(out, Buffer.concat([...cpioChunks(entries)]));
}

interface Vm {
  proc: ChildProcess;
  out: () => string;
  waitFor: (re: RegExp, ms: number) => Promise<number>;
  stop: () => Promise<void>;
}

/** OVMF Secure Boot (secboot code, Microsoft keys enrolled) on q35 under TCG, network boot only. */
function startVm(name: string): Vm {
  const vars = path.join(work, `${name}.vars.fd`);
  fs.copyFileSync(path.join(OVMF, "OVMF_VARS_4M.ms.fd"), vars);
  const args = [
    ...["netns", "exec", NS, "qemu-system-x86_64"],
    ...["-machine", "q35,smm=on,accel=tcg", "-global", "driver=cfi.pflash01,property=secure,value=on", "-global", "ICH9-LPC.disable_s3=1"],
    ...["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF}/OVMF_CODE_4M.secboot.fd`, "-drive", `if=pflash,format=raw,unit=1,file=${vars}`],
    ...["-m", "768", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio"],
    ...["-netdev", `tap,id=n0,ifname=${TAP},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n0,mac=${MAC},romfile=,bootindex=1`],
    ...["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"],
  ];
  const t0 = Date.now();
  const proc = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  const waiters: { re: RegExp; resolve: (ms: number) => void }[] = [];
  const onData = (b: Buffer) => {
    text += b.toString("latin1");
    for (const w of [...waiters])
      if (w.re.test(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(Date.now() - t0);
      }
  };
  proc.stdout.on("data", onData);
  proc.stderr.on("data", onData);
  return {
    proc,
    out: () => text,
    waitFor: (re, ms) =>
      new Promise((resolve, reject) => {
        if (re.test(text)) return resolve(Date.now() - t0);
        const timer = setTimeout(() => reject(new Error(`${name}: no ${re} in ${ms / 1000} s; console:\n${text.slice(-3000)}`)), ms);
        waiters.push({ re, resolve: (t) => (clearTimeout(timer), resolve(t)) });
        proc.once("exit", () => setTimeout(() => (re.test(text) ? undefined : reject(new Error(`${name}: QEMU exited before ${re}; console:\n${text.slice(-3000)}`))), 50));
      }),
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode) return;
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

let h: Harness;
let nb: NetbootService;
let machineId: number;
const vms: Vm[] = [];

beforeAll(async () => {
  for (const [tool, args] of [["ip", ["-V"]], ["dnsmasq", ["--version"]], ["qemu-system-x86_64", ["--version"]]] as const) {
    const r = spawnSync(tool, args as unknown as string[]);
    if (r.error) throw new Error(`${tool} is required for this test (bash scripts/install-system-deps.sh test): ${r.error.message}`);
  }
  for (const f of ["OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"]) {
    if (!fs.existsSync(path.join(OVMF, f))) throw new Error(`${OVMF}/${f} is required (apt-get install ovmf)`);
  }
  ip("netns", "add", NS);
  ip("-n", NS, "link", "set", "lo", "up");
  ip("-n", NS, "link", "add", BR, "type", "bridge");
  ip("-n", NS, "addr", "add", `${NET}.1/24`, "dev", BR);
  ip("-n", NS, "link", "set", BR, "up");
  ip("-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap");
  ip("-n", NS, "link", "set", TAP, "master", BR, "up");

  h = createHarness();
  // The agent boot files: Debian's signed kernel and a tiny initramfs standing in for the RAM disk.
  const kdir = kernelDir({ cacheDir });
  const vmlinuz = fs.readdirSync(path.join(kdir, "boot")).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`no vmlinuz in ${kdir}/boot`);
  const rd = path.join(h.dataDir, "http", "ramdisk");
  fs.mkdirSync(rd, { recursive: true });
  fs.copyFileSync(path.join(kdir, "boot", vmlinuz), path.join(rd, "vmlinuz"));
  tinyInitrd(path.join(rd, "initrd.img"));

  await storeNetbootSettings(h.domain, { mode: "managed", interface: BR, serverAddress: `${NET}.1`, rangeStart: `${NET}.100`, rangeEnd: `${NET}.150`, httpBaseUrl: `http://${NET}.1:3000` }, "test");
  const m = await enrollMachine(h.domain, { name: "uefi-vm", bootMac: MAC, ip: `${NET}.51`, uHeight: 1 }, "test");
  machineId = m.id;
  for (const act of ["manage", "provide", "deploy"] as const) await transition(h.domain, m.id, act, { actor: "test" });
  nb = new NetbootService(h.domain, { dataDir: h.dataDir, debounceMs: 5, dnsmasqCommand: ["ip", "netns", "exec", NS, "dnsmasq"] });
  await nb.start();
  expect(nb.status().lastError).toBeNull();
  expect(nb.status().loaders.filter((l) => l.error)).toEqual([]);
}, 300_000);

afterAll(async () => {
  try {
    for (const vm of vms) await vm.stop();
    await nb?.stop();
  } finally {
    spawnSync("ip", ["netns", "del", NS]);
    h?.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}, 60_000);

describe("UEFI PXE with Secure Boot on Rackhand's boot tree (OVMF, TCG)", () => {
  it("boots shim → signed GRUB → the machine's per-MAC entry → Debian's signed kernel, Secure Boot enforced", async () => {
    const vm = startVm("sb");
    vms.push(vm);
    const grub = await vm.waitFor(/Rackhand: MAC 52:54:00/, 120_000);
    // Wait for the whole marker line (its lockdown part and the line end), not only its start.
    const marker = await vm.waitFor(new RegExp(`${MARKER} cmdline=\\[[^\\]]*\\] lockdown=\\[.*\\]\\r?\\n`), 180_000);
    const text = vm.out();
    expect(text).toMatch(/Secure boot enabled|UEFI Secure Boot is enabled/);
    const line = new RegExp(`${MARKER} cmdline=\\[([^\\]]*)\\] lockdown=\\[(.*)\\]\\r?$`, "m").exec(text)!;
    expect(line[1]).toContain(`rackhand.machine=${machineId}`);
    expect(line[1]).toContain("rackhand.mode=deploying");
    // Kernel lockdown (integrity) is on because Secure Boot is.
    expect(line[2]).toContain("[integrity]");
    // The DHCP request told Rackhand the firmware: UEFI x86-64 PXE.
    expect(await getMachine(storeOf(h.domain), machineId)).toMatchObject({ bootFirmware: "uefi", bootArch: 7 });
    console.log(`UEFI Secure Boot netboot: GRUB read the per-MAC entry at ${(grub / 1000).toFixed(1)} s, marker at ${(marker / 1000).toFixed(1)} s`);
    await vm.stop();
  });

  it("the same VM refuses an unsigned boot file (Secure Boot is really enforced)", async () => {
    // Hand the firmware iPXE (unsigned) under shim's name; the next full reconcile puts shim back.
    const shim = path.join(nb.tftpRoot, "shimx64.efi");
    fs.copyFileSync("/usr/lib/ipxe/snponly.efi", shim);
    const vm = startVm("neg");
    vms.push(vm);
    await vm.waitFor(/Access Denied/, 120_000);
    expect(vm.out()).not.toMatch(/iPXE initialising|Welcome to GRUB/);
    await vm.stop();
    h.domain.bus.publish({ type: "netboot.changed" });
    await nb.whenIdle();
    const st = nb.status().loaders.find((l) => l.name === "shimx64.efi")!;
    expect(crypto.createHash("sha256").update(fs.readFileSync(shim)).digest("hex")).toBe(st.sha256);
  });

  it("Rackhand's RAM disk boots through the same chain and loads its (Debian-signed) drivers under lockdown", async () => {
    const agent = await buildAgentBundle(work);
    const rd = path.join(h.dataDir, "http", "ramdisk");
    buildRamdisk({ outDir: rd, cacheDir, kernelDir: kernelDir({ cacheDir }), compress: "gzip", agent });
    const vm = startVm("ramdisk");
    vms.push(vm);
    const t = await vm.waitFor(/rackhand-init: drivers: [^\n]*virtio_net/, 240_000);
    const text = vm.out();
    expect(text).toMatch(/Kernel is locked down from EFI Secure Boot/);
    expect(text).not.toMatch(/Loading of unsigned module is rejected|module verification failed|Lockdown: .*\/dev\/mem/);
    console.log(`UEFI Secure Boot: Rackhand's RAM disk loaded its drivers at ${(t / 1000).toFixed(1)} s`);
    await vm.stop();
  });
});
