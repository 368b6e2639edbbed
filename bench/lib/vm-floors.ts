/**
 * Floors for the phases of a VM deploy (npm run bench:vm): the same pieces the deploy chains together, each
 * started directly with QEMU (same TCG machine, same memory), without Rackhand's orchestration in between.
 *   - PXE DHCP: QEMU -boot n on the rack's bridge → iPXE's DHCPACK in Rackhand's dnsmasq log
 *   - RAM disk: -kernel/-initrd of the agent RAM disk with rackhand.shell=1 → the init's first line
 *     ("rackhand-init: …", printed once its DHCP finished, as in a deploy); then, in the rescue shell on the serial
 *     console: Node's start-up (`node -e 0`) and the virtual disk's write speed (dd of the image's size, fsync)
 *   - the installed OS: the stand-in image booted from disk (-boot c, snapshot) → its marker
 * Each QEMU is a child of this process, killed by PID when its figure is taken (or on failure).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";

/** A QEMU child whose serial console is on its stdio. */
export class DirectVm {
  readonly startedAt = Date.now();
  private out = "";
  private readonly proc: ChildProcess;
  private readonly exited: Promise<void>;

  constructor(args: string[]) {
    this.proc = spawn("qemu-system-x86_64", ["-machine", "pc,accel=tcg", "-display", "none", "-monitor", "none", "-serial", "stdio", ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.proc.stdout!.on("data", (c: Buffer) => (this.out += c.toString("latin1").replaceAll("\r", "")));
    this.proc.stderr!.on("data", (c: Buffer) => (this.out += c.toString("latin1")));
    this.proc.stdin!.on("error", () => undefined); // QEMU may exit while a command is being written
    this.exited = new Promise((r) => this.proc.once("exit", () => r()));
  }

  /** Epoch ms at which `re` first matched the console (to the 20 ms poll) and the match. @throws Error on timeout or exit */
  async waitFor(re: RegExp, timeoutMs: number): Promise<{ at: number; m: RegExpExecArray }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return { at: Date.now(), m };
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`QEMU exited before ${re} appeared:\n${this.out.slice(-1500)}`);
      if (Date.now() > deadline) throw new Error(`${re} did not appear within ${timeoutMs} ms:\n${this.out.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Type a line on the serial console. */
  send(line: string): void {
    this.proc.stdin!.write(line + "\n");
  }

  /** Stop this QEMU (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const killer = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(killer);
  }
}

export interface FloorInputs {
  memMiB: number;
  /** A tap on the rack's bridge that no VM uses meanwhile, and a MAC for it. */
  tap: string;
  mac: string;
  /** The RAM disk as Rackhand serves it. */
  vmlinuz: string;
  initrd: string;
  /** Raw stand-in OS image (booted read-only: snapshot=on) and the marker it prints. */
  osImage: string;
  marker: string;
  /** Bytes the dd writes: the image's size. */
  imageBytes: number;
  /** A scratch disk file for the write measurement (at least imageBytes). */
  scratchDisk: string;
  /** Epoch ms of the first DHCPACK to `mac` at or after `since` in Rackhand's log, if any yet. */
  dhcpAckSince: (mac: string, since: number) => number | null;
  /** Each started QEMU is registered here until it is stopped (the caller's cleanup on failure). */
  track: (vm: DirectVm) => () => void;
}

export interface FloorRun {
  /** QEMU start → iPXE's DHCPACK, ms. */
  pxeDhcpMs: number;
  /** QEMU start (-kernel/-initrd) → the RAM disk init's first line (after its DHCP), ms. */
  ramdiskMs: number;
  /** `node -e 0` in the RAM disk, ms (guest /proc/uptime, 10 ms resolution). */
  nodeStartMs: number;
  /** dd of imageBytes zeros onto the virtio disk with fsync, MB/s (10^6 B/s, guest clock). */
  diskWriteMBps: number;
  /** QEMU start (-boot c) → the installed OS's marker, ms. */
  osBootMs: number;
}

async function withVm<T>(o: FloorInputs, args: string[], fn: (vm: DirectVm) => Promise<T>): Promise<T> {
  const vm = new DirectVm(["-m", String(o.memMiB), ...args]);
  const untrack = o.track(vm);
  try {
    return await fn(vm);
  } finally {
    await vm.stop();
    untrack();
  }
}

const nic = (o: FloorInputs) => ["-netdev", `tap,id=n0,ifname=${o.tap},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n0,mac=${o.mac}`];

async function pxeDhcp(o: FloorInputs): Promise<number> {
  return withVm(o, [...nic(o), "-boot", "n"], async (vm) => {
    const deadline = vm.startedAt + 60_000;
    for (;;) {
      const ack = o.dhcpAckSince(o.mac, vm.startedAt);
      if (ack !== null) return ack - vm.startedAt;
      if (Date.now() > deadline) throw new Error("no DHCPACK for the PXE floor VM within 60 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  });
}

// Shell lines whose output, not their echo, matches: the marker word is split by quotes in the command.
const uptimeAround = (tag: string, cmd: string) => `a=$(cut -d' ' -f1 /proc/uptime); ${cmd}; b=$(cut -d' ' -f1 /proc/uptime); echo "BENCH""-${tag} $a $b"`;
const span = (m: RegExpExecArray) => (Number(m[2]) - Number(m[1])) * 1000;

async function ramdisk(o: FloorInputs): Promise<Pick<FloorRun, "ramdiskMs" | "nodeStartMs" | "diskWriteMBps">> {
  fs.writeFileSync(o.scratchDisk, "");
  fs.truncateSync(o.scratchDisk, Math.max(o.imageBytes, 128 << 20));
  const mib = Math.ceil(o.imageBytes / (1 << 20));
  const args = [
    ...nic(o),
    ...["-drive", `file=${o.scratchDisk},if=virtio,format=raw,discard=unmap`],
    ...["-kernel", o.vmlinuz, "-initrd", o.initrd, "-append", "console=tty0 console=ttyS0,115200 rackhand.shell=1"],
  ];
  return withVm(o, args, async (vm) => {
    const init = await vm.waitFor(/rackhand-init: /, 120_000);
    await vm.waitFor(/dropping to a shell/, 10_000);
    await new Promise((r) => setTimeout(r, 500)); // the shell's prompt
    vm.send(uptimeAround("NODE", "node -e 0"));
    const node = await vm.waitFor(/BENCH-NODE ([\d.]+) ([\d.]+)/, 60_000);
    vm.send(uptimeAround("DD", `dd if=/dev/zero of=/dev/vda bs=1M count=${mib} conv=fsync 2>/dev/null`));
    const dd = await vm.waitFor(/BENCH-DD ([\d.]+) ([\d.]+)/, 120_000);
    return { ramdiskMs: init.at - vm.startedAt, nodeStartMs: span(node.m), diskWriteMBps: (mib * (1 << 20)) / 1e6 / (span(dd.m) / 1000) };
  });
}

async function osBoot(o: FloorInputs): Promise<number> {
  const args = ["-nic", "none", "-drive", `file=${o.osImage},if=virtio,format=raw,snapshot=on`, "-boot", "c"];
  return withVm(o, args, async (vm) => (await vm.waitFor(new RegExp(`${o.marker} uptime=`), 120_000)).at - vm.startedAt);
}

/** Measure every floor once, one QEMU at a time. */
export async function measureFloors(o: FloorInputs): Promise<FloorRun> {
  const pxeDhcpMs = await pxeDhcp(o);
  const rd = await ramdisk(o);
  const osBootMs = await osBoot(o);
  return { pxeDhcpMs, ...rd, osBootMs };
}
