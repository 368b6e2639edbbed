/**
 * lab/vlan-port.pl refuses hostile arguments before it opens any tap device (the names reach the kernel as interface
 * names, the VLAN id a frame header). Its forwarding is proven by lab/net-deploy.vm.test.ts. Needs perl (perl-base).
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "vlan-port.pl");
const run = (args: string[]) => spawnSync("perl", [SCRIPT, ...args], { encoding: "utf8", input: "" });

describe("vlan-port.pl arguments", () => {
  it.each(["0", "4095", "65536", "-1", "1;reboot", "1\n2", "$(id)", "1 2", "0x10", "١", ""])("refuses VLAN id %j", (vid) => {
    const r = run(["rvtrk0", "rvacc0", vid]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("usage: vlan-port.pl");
  });

  it.each(["a b", "a\nb", "../x", "x".repeat(16), "ünï", "a;b", "$(id)", "a/b", "a:b", "", "-"])("refuses interface name %j", (name) => {
    for (const args of [[name, "rvacc0", "10"], ["rvtrk0", name, "10"]]) {
      const r = run(args);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/bad interface name|usage/);
      expect(spawnSync("ip", ["link", "show", "dev", "rvacc0"]).status).not.toBe(0);
    }
  });
});
