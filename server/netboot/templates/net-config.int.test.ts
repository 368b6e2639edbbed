/**
 * Every network format checked by the real tools of the versions that read it (Debian 12 packages, installed by
 * scripts/install-system-deps.sh test; a missing tool fails the test):
 * - NetworkManager keyfiles: `nmcli --offline connection modify` (NM 1.42) and libnm's own keyfile reader
 *   (NM.keyfile_read via python3-gi); every key we write must survive the read (NM drops keys it does not know,
 *   which is how controller=/port-type= silently broke bonds before 1.46);
 * - netplan: `netplan generate --root-dir` (0.106), then the systemd-networkd files it wrote;
 * - ifupdown: `ifup --no-act -a -i <file>` (0.8.41) in a private network namespace (unshare --net);
 * - ifcfg: every variable name against the list NetworkManager's ifcfg-rh plugin reads, and sourced by sh.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NET_MATRIX } from "../../testing/net-matrix";
import { isIfcfgVariable } from "../../testing/ifcfg-variables";
import { netmaskOf, netViews, renderIfcfg, renderIfupdown, renderNetplan, renderNmKeyfiles, type IfaceView } from "./net-config";

const PY = "/usr/bin/python3";
const NM_READER = path.join(import.meta.dirname, "..", "..", "testing", "nm-keyfile-read.py");
let tmp: string;

function run(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (install the test tools: scripts/install-system-deps.sh test)`);
  return r;
}

beforeAll(() => {
  // Fail loudly, never skip: each tool is a Debian package in the `test` profile of install-system-deps.sh.
  for (const [tool, pkg] of [
    ["nmcli", "network-manager"],
    ["netplan", "netplan.io"],
    ["ifup", "ifupdown"],
    ["unshare", "util-linux"],
  ]) {
    expect(run("sh", ["-c", `command -v ${tool}`]).status, `${tool} is missing: apt-get install ${pkg} (scripts/install-system-deps.sh test)`).toBe(0);
  }
  const gi = run(PY, ["-c", "import gi; gi.require_version('NM', '1.0'); from gi.repository import NM; print(NM.MAJOR_VERSION, NM.MINOR_VERSION)"]);
  expect(gi.status, `libnm for python is missing: apt-get install python3-gi gir1.2-nm-1.0 (${gi.stderr})`).toBe(0);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-netcheck-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** [section] key=value lines of a keyfile, comments dropped. */
function parseKeyfile(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = "";
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) out[(section = s[1]!)] ??= {};
    else {
      const i = line.indexOf("=");
      out[section]![line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return out;
}

/** Keys NM leaves out when it writes a profile because they hold the default value. */
const NM_DEFAULTS: Record<string, string> = { "connection.autoconnect": "true" };

function expectKeysKept(ours: Record<string, Record<string, string>>, theirs: Record<string, Record<string, string>>, what: string) {
  for (const [section, keys] of Object.entries(ours)) {
    for (const [key, value] of Object.entries(keys)) {
      if (NM_DEFAULTS[`${section}.${key}`] === value && theirs[section]?.[key] === undefined) continue;
      expect(theirs[section]?.[key]?.toLowerCase(), `${what}: [${section}] ${key}=${value} was not read back`).toBe(value.toLowerCase());
    }
  }
}

const CASES = Object.entries(NET_MATRIX);

describe.each(CASES)("network matrix: %s", (name, net) => {
  const views = netViews(net).views;

  it("NetworkManager 1.42 keeps every keyfile key (nmcli --offline and libnm's keyfile reader)", () => {
    for (const f of renderNmKeyfiles(net)) {
      const ours = parseKeyfile(f.content);
      const nmcli = run("nmcli", ["--offline", "connection", "modify", "connection.autoconnect", "yes"], f.content);
      expect(nmcli.status, `${f.path}: nmcli --offline refused it: ${nmcli.stderr}`).toBe(0);
      expectKeysKept(ours, parseKeyfile(nmcli.stdout), `${name}/${f.path} (nmcli)`);
      const lib = run(PY, [NM_READER], f.content);
      expect(lib.status, `${f.path}: libnm refused it: ${lib.stderr}`).toBe(0);
      const read = JSON.parse(lib.stdout) as { nm: string; keyfile: Record<string, Record<string, string>> };
      expect(read.nm).toMatch(/^1\.42\./); // Debian 12's NetworkManager: the oldest version the keys must work on
      expectKeysKept(ours, read.keyfile, `${name}/${f.path} (libnm)`);
    }
  });

  it("netplan generate accepts the YAML and writes the addresses, routes, bond, VLAN and IPv6 settings", () => {
    const root = fs.mkdtempSync(path.join(tmp, "netplan-"));
    fs.mkdirSync(path.join(root, "etc/netplan"), { recursive: true });
    const [f] = renderNetplan(net);
    fs.writeFileSync(path.join(root, "etc/netplan", f!.path), f!.content, { mode: 0o600 });
    const r = run("netplan", ["generate", "--root-dir", root]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim(), "netplan warned").toBe("");
    const dir = path.join(root, "run/systemd/network");
    const file = (n: string) => (fs.existsSync(path.join(dir, n)) ? fs.readFileSync(path.join(dir, n), "utf8") : "");
    for (const v of views) {
      const network = file(`10-netplan-${v.name}.network`);
      expect(network, `${v.name}.network`).toContain(`Name=${v.name}`);
      if (v.addr4) expect(network).toContain(`Address=${v.addr4.address}/${v.addr4.prefix}`);
      if (v.addr6) expect(network).toContain(`Address=${v.addr6.address}/${v.addr6.prefix}`);
      if (v.addr4 && v.it.gateway4) expect(network).toMatch(new RegExp(`Gateway=${v.it.gateway4.replaceAll(".", "\\.")}\\n`));
      if (v.addr6 && v.it.gateway6) expect(network).toContain(`Gateway=${v.it.gateway6}\n`);
      if (v.v4 === "dhcp" && v.v6 === "dhcp") expect(network).toContain("DHCP=yes");
      else if (v.v4 === "dhcp") expect(network).toContain("DHCP=ipv4");
      else if (v.v6 === "dhcp") expect(network).toContain("DHCP=ipv6");
      else expect(network).not.toContain("DHCP=");
      expect(network).toContain(v.v6 === "slaac" || v.v6 === "dhcp" ? "IPv6AcceptRA=yes" : "IPv6AcceptRA=no");
      if (v.it.mtu) expect(file(`10-netplan-${v.name}.${v.it.kind === "ethernet" ? "link" : "netdev"}`) + network).toContain(`MTUBytes=${v.it.mtu}`);
      if (v.it.kind === "bond") {
        const netdev = file(`10-netplan-${v.name}.netdev`);
        expect(netdev).toContain("Kind=bond");
        expect(netdev).toContain(`Mode=${v.it.bondMode}`);
        if (v.it.lacpRate) expect(netdev).toContain(`LACPTransmitRate=${v.it.lacpRate}`);
        if (v.it.xmitHashPolicy) expect(netdev).toContain(`TransmitHashPolicy=${v.it.xmitHashPolicy}`);
      }
      if (v.it.kind === "vlan") expect(file(`10-netplan-${v.name}.netdev`)).toContain(`Id=${v.it.vlanId}`);
      if (v.v4 === "member") expect(network).toContain(`Bond=${v.it.master}`);
    }
  });

  it("ifup --no-act reads the interfaces file in a private network namespace and plans the right commands", () => {
    const [f] = renderIfupdown(net);
    const file = path.join(tmp, `interfaces-${name}`);
    fs.writeFileSync(file, f!.content);
    const state = fs.mkdtempSync(path.join(tmp, "ifstate-"));
    const r = run("unshare", ["--net", "ifup", "--no-act", "-a", "-i", file, `--state-dir=${state}`]);
    expect(r.status, r.stderr).toBe(0);
    // --no-act prints the planned commands on stderr; ifup's own complaints start with "ifup:".
    expect(r.stderr).not.toMatch(/^ifup: /m);
    const out = r.stdout + r.stderr;
    // One loopback stanza only, and each interface once per family.
    expect(f!.content.match(/^iface lo /gm)).toHaveLength(1);
    for (const v of views) {
      expect(f!.content.match(new RegExp(`^iface ${v.name.replaceAll(".", "\\.")} inet `, "gm")), v.name).toHaveLength(1);
      expect(f!.content.match(new RegExp(`^iface ${v.name.replaceAll(".", "\\.")} inet6 `, "gm")) ?? [], v.name).toHaveLength(v.v6 === "none" ? 0 : 1);
      expectIfupCommands(out, v);
    }
  });

  it("ifcfg uses only variables NetworkManager's ifcfg-rh plugin reads, and sh sources each file to the intended values", () => {
    for (const f of renderIfcfg(net)) {
      const names = f.content
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.slice(0, l.indexOf("=")));
      for (const n of names) expect(isIfcfgVariable(n), `${f.path}: ${n} is not read by ifcfg-rh`).toBe(true);
      const r = run("env", ["-i", "sh", "-c", `set -eu; . "$1"; for n in ${names.join(" ")}; do eval "printf '%s=%s\\n' \\"\\$n\\" \\"\\\${$n}\\""; done`, "sh", writeTmp(f.path, f.content)]);
      expect(r.status, r.stderr).toBe(0);
      const env = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      const v = views.find((x) => `ifcfg-${x.name}` === f.path)!;
      expect(env.DEVICE).toBe(v.name);
      if (v.addr4) expect([env.IPADDR, env.PREFIX]).toEqual([v.addr4.address, String(v.addr4.prefix)]);
      if (v.addr6) expect(env.IPV6ADDR).toBe(`${v.addr6.address}/${v.addr6.prefix}`);
      expect(env.IPV6INIT ?? "no").toBe(v.v6 === "none" ? "no" : "yes");
      if (v.v6 === "slaac") expect(env.IPV6_AUTOCONF).toBe("yes");
      if (v.v6 === "dhcp") expect(env.DHCPV6C).toBe("yes");
      if (v.it.kind === "bond") expect(env.BONDING_OPTS).toBe(`mode=${v.it.bondMode} miimon=${v.it.miimon}${v.it.lacpRate ? ` lacp_rate=${v.it.lacpRate}` : ""}${v.it.xmitHashPolicy ? ` xmit_hash_policy=${v.it.xmitHashPolicy}` : ""}`);
      if (v.it.mtu) expect(env.MTU).toBe(String(v.it.mtu));
    }
  });
});

function writeTmp(name: string, content: string): string {
  const file = path.join(fs.mkdtempSync(path.join(tmp, "ifcfg-")), name);
  fs.writeFileSync(file, content);
  return file;
}

/** What ifupdown 0.8 plans (--no-act prints the commands) for one interface. */
function expectIfupCommands(out: string, v: IfaceView) {
  if (v.addr4) expect(out, v.name).toContain(`ip addr add ${v.addr4.address}/${netmaskOf(v.addr4.prefix)}`);
  if (v.addr4 && v.it.gateway4) expect(out).toContain(`ip route add default via ${v.it.gateway4}`);
  if (v.addr6) expect(out, v.name).toContain(`ip -6 addr add ${v.addr6.address}/${v.addr6.prefix}`);
  if (v.addr6 && v.it.gateway6) expect(out).toContain(`ip -6 route replace default via ${v.it.gateway6}`);
  if (v.v6 === "slaac") expect(out).toContain(`net.ipv6.conf.${v.name}.autoconf=1`);
  if (v.it.mtu) expect(out).toMatch(new RegExp(`mtu ${v.it.mtu}`));
  if (v.it.kind === "vlan") expect(out).toContain(`ip link add link ${v.it.parent} name ${v.name} type vlan id ${v.it.vlanId}`);
}
