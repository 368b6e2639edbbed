/**
 * Test fixture: a provisioning network for a managed dnsmasq and a real DHCP/TFTP client. Two network namespaces
 * joined by a veth pair: the server's (address `<net>.1/24`; dnsmasq runs there through `dnsmasqCommand`) and the
 * client's (busybox udhcpc and tftp). Needs root, iproute2, dnsmasq and busybox-static: a missing tool fails the
 * test (bash scripts/install-system-deps.sh test installs them). Everything is named `<prefix>{s,c,a,b}` and
 * removed by teardown(), which a test calls in afterAll even when setup failed half-way.
 */
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.error ?? r.stderr}`);
}

export class DhcpNetns {
  /** Namespaces (server, client) and their ends of the veth pair. */
  readonly nsSrv: string;
  readonly nsCli: string;
  readonly devSrv: string;
  readonly devCli: string;
  private script = "";

  /** `prefix`: unique to the test file (a few letters and the pid; names stay under 15 characters). `net`: "10.x.y". */
  constructor(
    prefix: string,
    readonly net: string,
  ) {
    this.nsSrv = `${prefix}s`;
    this.nsCli = `${prefix}c`;
    this.devSrv = `${prefix}a`;
    this.devCli = `${prefix}b`;
  }

  /** The server's address on the network. */
  get serverAddress(): string {
    return `${this.net}.1`;
  }

  /** How a NetbootService starts dnsmasq inside the server namespace. */
  get dnsmasqCommand(): string[] {
    return ["ip", "netns", "exec", this.nsSrv, "dnsmasq"];
  }

  /**
   * Check the tools, create both namespaces and the link, and write the udhcpc script into `dir`.
   * `clientHost`: a fixed client address `<net>.<clientHost>` (outside the range) for TFTP; udhcpc uses raw sockets and needs none.
   */
  setup(dir: string, opts: { clientHost?: number } = {}): void {
    for (const [tool, args] of [["ip", ["-V"]], ["dnsmasq", ["--version"]], ["busybox", ["udhcpc", "--help"]]] as const) {
      const r = spawnSync(tool, args as unknown as string[]);
      if (r.error) throw new Error(`${tool} is required for this test (bash scripts/install-system-deps.sh test): ${r.error.message}`);
    }
    ip("netns", "add", this.nsSrv);
    ip("netns", "add", this.nsCli);
    ip("link", "add", this.devSrv, "netns", this.nsSrv, "type", "veth", "peer", "name", this.devCli, "netns", this.nsCli);
    ip("-n", this.nsSrv, "addr", "add", `${this.serverAddress}/24`, "dev", this.devSrv);
    if (opts.clientHost !== undefined) ip("-n", this.nsCli, "addr", "add", `${this.net}.${opts.clientHost}/24`, "dev", this.devCli);
    for (const [ns, dev] of [
      [this.nsSrv, this.devSrv],
      [this.nsCli, this.devCli],
    ] as const) {
      ip("-n", ns, "link", "set", "lo", "up");
      ip("-n", ns, "link", "set", dev, "up");
    }
    this.script = path.join(dir, "udhcpc.script");
    fs.writeFileSync(
      this.script,
      `#!/bin/sh\ncase "$1" in\n  bound|renew) echo "LEASE ip=$ip hostname=$hostname siaddr=$siaddr boot_file=$boot_file bootfile=$bootfile" ;;\nesac\n`,
      { mode: 0o755 },
    );
  }

  /**
   * One DHCP exchange from the client namespace as `mac` (udhcpc, options hostname and bootfile asked for, `extra`
   * appended). @returns the line "LEASE ip=… hostname=… siaddr=… boot_file=… bootfile=…", or "no lease: <output>".
   */
  async dhcp(mac: string, extra: string[] = []): Promise<string> {
    ip("-n", this.nsCli, "link", "set", this.devCli, "address", mac);
    // -R releases the lease on exit, so a later run of the same MAC starts afresh.
    const { stdout } = await run("ip", ["netns", "exec", this.nsCli, "busybox", "udhcpc", "-i", this.devCli, "-s", this.script, "-q", "-n", "-R", "-t", "5", "-T", "1", "-O", "hostname", "-O", "bootfile", ...extra], { timeout: 20_000 });
    return stdout.split("\n").find((l) => l.startsWith("LEASE")) ?? `no lease: ${stdout}`;
  }

  /** Run a program in the client namespace (no shell). @throws as execFile: a non-zero exit, the timeout */
  inClient(args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
    return run("ip", ["netns", "exec", this.nsCli, ...args], { timeout: timeoutMs });
  }

  /** Remove both namespaces (the veth pair goes with them); quiet when they do not exist. */
  teardown(): void {
    spawnSync("ip", ["netns", "del", this.nsSrv]);
    spawnSync("ip", ["netns", "del", this.nsCli]);
  }
}
