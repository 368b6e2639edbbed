/**
 * The native RMCP+ probe against real ipmi_sim BMCs, cross-checked with ipmitool on every one; and the driver's
 * fallback to ipmitool whenever the probe cannot answer (wrong password, a cipher suite it does not speak, a
 * BMC that died and came back).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IpmitoolCall } from "../exec";
import { machineInput } from "../../testing/fixtures";
import { createHarness, type Harness } from "../../testing/harness";
import { IpmiSim, SIM_USER, startSims } from "../testing/ipmi-sim";
import type { BmcTarget } from "../types";
import { RmcpError } from "./packets";
import { probeDeviceId, probePower } from "./probe";

let sims: IpmiSim[] = [];
const target = (s: IpmiSim, over: Partial<BmcTarget> = {}): BmcTarget => ({
  machineId: 1,
  address: "127.0.0.1",
  port: s.port,
  username: SIM_USER,
  password: s.password,
  privilege: "ADMINISTRATOR",
  cipherSuite: 3,
  ...over,
});
const o = { stepTimeoutMs: 1000 };

beforeAll(async () => {
  sims = await startSims(4, "rmcp");
});
afterAll(async () => {
  await Promise.all(sims.map((s) => s.stop()));
});

describe("native RMCP+ probe vs ipmitool on the same BMCs", () => {
  it("power state and device id agree with ipmitool on every BMC, on and off, at each privilege", async () => {
    for (const [i, s] of sims.entries()) {
      expect(s.ipmitool(["chassis", "power", i % 2 ? "on" : "off"]).status).toBe(0);
      for (const privilege of ["USER", "OPERATOR", "ADMINISTRATOR"] as const) {
        const native = await probePower(target(s, { privilege }), o);
        const tool = /Chassis Power is (on|off)/.exec(s.ipmitool(["chassis", "power", "status"]).stdout)![1];
        expect(native).toBe(tool);
        expect(native).toBe(s.power());
      }
      const id = await probeDeviceId(target(s), o);
      const info = s.ipmitool(["mc", "info"]).stdout;
      expect(id.firmware).toBe(/Firmware Revision\s*:\s*(\S+)/.exec(info)![1]);
      expect(id.ipmiVersion).toBe(/IPMI Version\s*:\s*(\S+)/.exec(info)![1]);
    }
    // A change behind the probe's back is seen on the next read.
    expect(sims[0]!.ipmitool(["chassis", "power", "on"]).status).toBe(0);
    expect(await probePower(target(sims[0]!), o)).toBe("on");
  });

  it("many reads in a row do not exhaust the BMC's sessions (each is closed)", async () => {
    // ipmi_sim allows a handful of sessions per channel; 60 unclosed ones would be refused long before the end.
    for (let i = 0; i < 60; i++) expect(await probePower(target(sims[1]!), o)).toBe(sims[1]!.power());
  });

  it("fails with RmcpError, never a state, for a wrong password, a wrong user, an unsupported suite and a dead BMC", async () => {
    await expect(probePower(target(sims[2]!, { password: "wrong" }), o)).rejects.toThrow(RmcpError);
    await expect(probePower(target(sims[2]!, { username: "nobody" }), o)).rejects.toThrow(RmcpError);
    await expect(probePower(target(sims[2]!, { cipherSuite: 17 }), o)).rejects.toThrow(/authentication algorithm|cipher/);
    await sims[3]!.kill();
    const t0 = Date.now();
    // Loopback answers a dead port with ICMP "port unreachable" (ECONNREFUSED on the connected socket); a silent
    // network gives the step timeout. Either way: an error, quickly.
    await expect(probePower(target(sims[3]!), { stepTimeoutMs: 300 })).rejects.toThrow(/no answer|ECONNREFUSED/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await sims[3]!.start();
    expect(await probePower(target(sims[3]!), o)).toBe(sims[3]!.power());
  });
});

describe("the ipmitool driver's status reads", () => {
  let h: Harness;
  const calls: IpmitoolCall[] = [];
  let ids: number[] = [];
  beforeAll(async () => {
    h = createHarness({ oob: { callTimeoutMs: 2000, attempts: 1, spacingMs: 0 }, observe: (c) => calls.push(c) });
    ids = [];
    for (const [i, s] of sims.entries()) ids.push((await h.operator.machines.enroll(machineInput(i + 1, { bmc: { address: "127.0.0.1", port: s.port, username: SIM_USER, password: s.password } }))).id);
  });
  afterAll(() => h?.close());

  it("power reads and Check BMC run no ipmitool at all when the probe answers", async () => {
    const before = calls.length;
    const stats = { ...h.domain.oob.probeStats };
    for (const [i, id] of ids.entries()) {
      expect((await h.operator.oob.checkBmc({ id })).reachable).toBe(true);
      const [r] = await h.operator.oob.power({ selection: { ids: [id] }, action: sims[i]!.power() === "on" ? "off" : "on" });
      expect(r!.ok).toBe(true);
    }
    // The power actions themselves are ipmitool runs; the reads around them are not.
    expect(calls.slice(before).map((c) => c.args.slice(-3).join(" ")).filter((a) => /power status|mc info/.test(a))).toEqual([]);
    expect(h.domain.oob.probeStats.native - stats.native).toBeGreaterThanOrEqual(ids.length * 2);
    expect(h.domain.oob.probeStats.fallback).toBe(stats.fallback);
  });

  it("falls back to ipmitool when the probe cannot answer, and ipmitool's verdict stands", async () => {
    // A cipher suite the probe does not speak: straight to ipmitool.
    h.db.$client.prepare("update bmcs set cipher_suite = 2 where machine_id = ?").run(ids[0]);
    const before = calls.length;
    expect((await h.operator.oob.checkBmc({ id: ids[0]! })).reachable).toBe(true);
    expect(calls.slice(before).map((c) => c.args.at(-1))).toEqual(["info"]);
    // Suite 17: the probe tries, ipmi_sim refuses the algorithm, ipmitool is asked and reports the failure itself.
    h.db.$client.prepare("update bmcs set cipher_suite = 17 where machine_id = ?").run(ids[1]);
    const fb = h.domain.oob.probeStats.fallback;
    const r = await h.operator.oob.checkBmc({ id: ids[1]! });
    expect(r.reachable).toBe(false);
    expect(h.domain.oob.probeStats.fallback).toBe(fb + 1);
    expect(h.domain.oob.probeStats.lastFallbackReason).toMatch(/authentication algorithm/);
    // A killed BMC: the probe times out, ipmitool times out too; no power state is invented.
    await sims[2]!.kill();
    const dead = await h.operator.oob.checkBmc({ id: ids[2]! });
    expect(dead.reachable).toBe(false);
    await sims[2]!.start();
    expect((await h.operator.oob.checkBmc({ id: ids[2]! })).reachable).toBe(true);
  });
});
