/**
 * Test fixture: real OpenIPMI `ipmi_sim` BMCs on 127.0.0.1 (lanplus, cipher suite 3), each with a file-backed
 * chassis (chassis-control.sh) and optionally a fake serial console on TCP for SOL (fake-console.py).
 * Only PIDs started here are ever killed; every simulator has its own temp directory, removed on stop.
 * Missing tools fail loudly: these tests must never skip.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SIM_USER = "admin";

/** Throw (never skip) when a tool the suite needs is missing. */
export function requireTool(name: string): void {
  const r = spawnSync("sh", ["-c", 'command -v "$1"', "sh", name], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${name} is not installed: run scripts/install-system-deps.sh test (packages ipmitool, openipmi)`);
}

export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function freeTcpPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The chassis_control program every simulator here uses (a VM when its state dir has qemu.args). */
const CHASSIS_CONTROL = path.join(HERE, "chassis-control.sh");

/**
 * An ipmi_sim lan.conf: one lanplus channel on 127.0.0.1:`port`, one admin user, the chassis controlled by
 * chassis-control.sh on `chassisDir`, and SOL to a TCP serial line when `solPort` is given.
 */
export function simLanConf(o: { name: string; port: number; user?: string; password: string; chassisDir: string; solPort?: number; solHistory?: number }): string {
  return [
    `name "${o.name}"`,
    "set_working_mc 0x20",
    "  startlan 1",
    `    addr 127.0.0.1 ${o.port}`,
    "    priv_limit admin",
    ...["callback", "user", "operator", "admin"].map((r) => `    allowed_auths_${r} none md2 md5 straight`),
    `    guid ${crypto.createHash("md5").update(o.name).digest("hex")}`,
    "  endlan",
    `  user 2 true "${o.user ?? SIM_USER}" "${o.password}" admin 10 none md2 md5 straight`,
    `  chassis_control "${CHASSIS_CONTROL} ${o.chassisDir}"`,
    o.solPort ? `  sol "tcp:127.0.0.1:${o.solPort}" 115200 history=${o.solHistory ?? 4000}` : "",
    "",
  ].join("\n");
}

// 0x9f device support includes the chassis device bit: without it power commands are refused.
export const BMC_EMU = "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n";

/** Run ipmitool against a simulator on 127.0.0.1 (behind Rackhand's back). Password via -E, as Rackhand does. */
export function simIpmitool(port: number, password: string, args: string[], user = SIM_USER) {
  return spawnSync("ipmitool", ["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", String(port), "-U", user, "-E", "-N", "1", "-R", "1", ...args], {
    env: { ...process.env, IPMI_PASSWORD: password },
    encoding: "utf8",
    timeout: 10_000,
  });
}

export interface SimOptions {
  password?: string;
  /** Start a fake serial console and wire it to SOL ("quiet": one that prints nothing until spoken to). */
  console?: boolean | "quiet";
  /** Initial chassis power. */
  power?: "on" | "off";
}

export class IpmiSim {
  readonly dir: string;
  readonly chassisDir: string;
  readonly password: string;
  port = 0;
  consolePort = 0;
  private sim: ChildProcess | undefined;
  private fakeConsole: ChildProcess | undefined;

  constructor(readonly name: string, private readonly opts: SimOptions = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `rackhand-sim-${name}-`));
    this.chassisDir = path.join(this.dir, "chassis");
    this.password = opts.password ?? `pw-${Math.random().toString(36).slice(2, 12)}`; // IPMI: at most 20 bytes
    fs.mkdirSync(this.chassisDir);
    fs.writeFileSync(path.join(this.chassisDir, "power"), opts.power === "on" ? "1\n" : "0\n");
  }

  get pid(): number | undefined {
    return this.sim?.pid;
  }

  /** Start (or restart on the same ports) and wait until it answers `mc info`. */
  async start(): Promise<this> {
    requireTool("ipmi_sim");
    requireTool("ipmitool");
    if (!this.port) this.port = await freeUdpPort();
    if (this.opts.console && !this.consolePort) this.consolePort = await freeTcpPort();
    if (this.opts.console && !this.fakeConsole) {
      requireTool("python3");
      const quiet = this.opts.console === "quiet" ? ["--quiet"] : [];
      this.fakeConsole = spawn("python3", [path.join(HERE, "fake-console.py"), String(this.consolePort), ...quiet], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve, reject) => {
        this.fakeConsole!.stdout!.once("data", () => resolve());
        this.fakeConsole!.once("exit", (c) => reject(new Error(`fake console exited (${c})`)));
      });
    }
    // A fresh state dir per start: ipmi_sim persists users/LAN settings there and they would override lan.conf.
    const state = path.join(this.dir, "state");
    fs.rmSync(state, { recursive: true, force: true });
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(this.dir, "lan.conf"), simLanConf({ name: this.name, port: this.port, password: this.password, chassisDir: this.chassisDir, solPort: this.consolePort || undefined }));
    fs.writeFileSync(path.join(this.dir, "bmc.emu"), BMC_EMU);
    const log = fs.openSync(path.join(this.dir, "sim.log"), "a");
    this.sim = spawn("ipmi_sim", ["-n", "-c", path.join(this.dir, "lan.conf"), "-f", path.join(this.dir, "bmc.emu"), "-s", state], {
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (this.sim.exitCode !== null) throw new Error(`ipmi_sim ${this.name} exited: ${fs.readFileSync(path.join(this.dir, "sim.log"), "utf8").slice(-500)}`);
      if (this.ipmitool(["mc", "info"]).status === 0) return this;
      if (Date.now() > deadline) throw new Error(`ipmi_sim ${this.name} did not answer on UDP ${this.port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Run ipmitool directly against this simulator (behind Rackhand's back). Password via -E, as Rackhand does. */
  ipmitool(args: string[]) {
    return simIpmitool(this.port, this.password, args);
  }

  /** The `ipmitool … sol activate` processes talking to this simulator (anyone's: read from /proc), with their command lines. */
  solChildren(): { pid: number; cmd: string }[] {
    return fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .flatMap((pid) => {
        try {
          const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
          return cmd.startsWith("ipmitool\0") && cmd.includes(`\0${this.port}\0`) && cmd.includes("\0sol\0activate") ? [{ pid: Number(pid), cmd }] : [];
        } catch {
          return []; // gone meanwhile
        }
      });
  }

  /** The chassis power as the simulator holds it. */
  power(): "on" | "off" {
    return fs.readFileSync(path.join(this.chassisDir, "power"), "utf8").trim() === "1" ? "on" : "off";
  }

  boot(): string {
    return fs.existsSync(path.join(this.chassisDir, "boot")) ? fs.readFileSync(path.join(this.chassisDir, "boot"), "utf8").trim() : "default";
  }

  /** Kill the simulator process (the BMC vanishes); the fake console keeps running. */
  async kill(): Promise<void> {
    const p = this.sim;
    if (!p || p.exitCode !== null || p.signalCode) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    const c = this.fakeConsole;
    if (c && c.exitCode === null && !c.signalCode) {
      const exited = new Promise<void>((r) => c.once("exit", () => r()));
      c.kill("SIGKILL");
      await exited;
    }
    this.fakeConsole = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startSims(n: number, prefix: string, opts: SimOptions = {}): Promise<IpmiSim[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => new IpmiSim(`${prefix}${i}`, opts).start()));
}

/** Is a PID still alive? (0 signal; ESRCH means gone.) */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

