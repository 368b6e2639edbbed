/**
 * The ipmitool driver and the oob procedures against real ipmi_sim BMCs (started and stopped here).
 */
import dgram from "node:dgram";
import fs from "node:fs";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { events, machines } from "../db/schema";
import { machineInput, expectTrpcError } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { loadBmc } from "./bmc-state";
import type { IpmitoolCall } from "./exec";
import { alive, freeUdpPort, IpmiSim, SIM_USER } from "./testing/ipmi-sim";

let h: Harness;
let sim: IpmiSim;
const calls: IpmitoolCall[] = [];
let seq = 0;

/** Machines enrolled per BMC address:port: enrollment takes one machine per BMC, so a new one replaces the last. */
const atBmc = new Map<string, number>();

async function enrollAt(port: number, password: string, extra: { address?: string } = {}) {
  seq++;
  const key = `${extra.address ?? "127.0.0.1"}:${port}`;
  const previous = atBmc.get(key);
  if (previous !== undefined) await h.operator.machines.delete({ id: previous });
  const { id } = await h.operator.machines.enroll(
    machineInput(900 + seq, { name: `sim-${seq}`, bmc: { address: extra.address ?? "127.0.0.1", port, username: SIM_USER, password } }),
  );
  atBmc.set(key, id);
  return id;
}

beforeAll(async () => {
  sim = await new IpmiSim("drv").start();
  h = createHarness({ oob: { callTimeoutMs: 4000, attempts: 3, backoffMs: 50, spacingMs: 10, confirmTimeoutMs: 5000 }, observe: (c) => calls.push(c) });
});
afterAll(async () => {
  h?.close();
  await sim?.stop();
});

describe("ipmitool driver against ipmi_sim", () => {
  it("drives power, boot device and mc info directly through the driver", async () => {
    const id = await enrollAt(sim.port, sim.password);
    const { driver, target } = await loadBmc(h.domain, id);
    expect(driver.name).toBe("ipmitool");
    expect(target.cipherSuite).toBe(3);
    expect(await driver.reachability.check(target)).toEqual({ info: expect.stringMatching(/^IPMI 2\.0/) });
    expect(await driver.power.getPower(target)).toBe("off");
    await driver.power.setPower(target, "on");
    expect(sim.power()).toBe("on");
    expect(await driver.power.getPower(target)).toBe("on");
    await driver.bootDevice.setBootDevice(target, "pxe", false);
    expect(sim.boot()).toBe("pxe");
    await driver.power.setPower(target, "off");
    expect(sim.power()).toBe("off");
  });

  it("validate() refuses bad parameters without starting ipmitool", async () => {
    const before = calls.length;
    const { driver, target } = await loadBmc(h.domain, 1);
    expect(() => driver.power.validate({ ...target, address: "-oProxyCommand=x" })).toThrow(/Invalid BMC address/);
    expect(() => driver.power.validate({ ...target, port: 0 })).toThrow(/port/);
    expect(() => driver.power.validate({ ...target, password: "" })).toThrow(/password/);
    expect(calls.length).toBe(before);
  });
});

describe("oob procedures against ipmi_sim", () => {
  let id: number;
  beforeAll(async () => {
    id = await enrollAt(sim.port, sim.password);
  });

  it("Check BMC answers with the stored credentials and marks the BMC seen", async () => {
    const r = await h.operator.oob.checkBmc({ id });
    expect(r).toMatchObject({ reachable: true, info: expect.stringContaining("IPMI") });
    const m = await h.viewer.machines.get({ id });
    expect(m.bmc).toMatchObject({ reachable: true, lastError: null, privilege: "ADMINISTRATOR", cipherSuite: 3 });
    expect(m.bmc!.lastSeen).toBeGreaterThan(Date.now() - 10_000);
  });

  it("manage verifies the BMC and reads the power state on the way", async () => {
    sim.ipmitool(["chassis", "power", "on"]);
    const r = await h.operator.machines.action({ id, action: "manage" });
    expect(r.to).toBe("manageable");
    expect((await h.viewer.machines.get({ id })).powerState).toBe("on");
  });

  it("power off / on / cycle / reset are confirmed and recorded; soft-off is a typed unsupported error", async () => {
    const run = async (action: "on" | "off" | "cycle" | "reset" | "soft") => (await h.operator.oob.power({ selection: { ids: [id] }, action }))[0]!;
    expect(await run("off")).toMatchObject({ ok: true, powerState: "off" });
    expect(sim.power()).toBe("off");
    expect((await h.viewer.machines.get({ id })).powerState).toBe("off");
    expect(await run("on")).toMatchObject({ ok: true, powerState: "on" });
    expect(sim.power()).toBe("on");
    expect(await run("cycle")).toMatchObject({ ok: true, powerState: "on" });
    expect(await run("reset")).toMatchObject({ ok: true, powerState: "on" });
    const log = fs.readFileSync(`${sim.chassisDir}/events.log`, "utf8");
    expect(log).toMatch(/power 0[\s\S]*power 1[\s\S]*reset 1/);
    const soft = await run("soft");
    expect(soft).toMatchObject({ ok: false, code: "BMC_UNSUPPORTED" });
    expect(soft.error).toMatch(/does not support/);
    const kinds = h.db.select().from(events).where(eq(events.machineId, id)).all().map((e) => e.message);
    expect(kinds).toEqual(expect.arrayContaining([expect.stringMatching(/^Power on → off \(power off by user:operator\)/), expect.stringMatching(/^Power off → on/)]));
  });

  it("boot device PXE or disk, once or persistent", async () => {
    await h.operator.oob.bootDevice({ id, device: "pxe" });
    expect(sim.boot()).toBe("pxe");
    await h.operator.oob.bootDevice({ id, device: "disk", persistent: true });
    // ipmi_sim reports "disk" as the default device selector.
    expect(sim.boot()).toBe("default");
    expect(calls.some((c) => c.args.join(" ").endsWith("chassis bootdev disk options=persistent"))).toBe(true);
    await h.operator.oob.bootDevice({ id, device: "pxe", persistent: false });
    expect(sim.boot()).toBe("pxe");
  });

  it("a UEFI machine's boot device carries the EFI boot type flag (options=efiboot), once or persistent", async () => {
    await h.operator.machines.update({ id, firmware: "uefi" });
    await h.operator.oob.bootDevice({ id, device: "pxe" });
    expect(sim.boot()).toBe("pxe");
    expect(calls.at(-1)!.args.join(" ")).toMatch(/chassis bootdev pxe options=efiboot$/);
    // ipmi_sim accepts the flag but keeps only the device: boot parameter 5 reads back 0004000000 (no EFI
    // bit, "Boot Flag Invalid"), so what reaches the BMC is checked on ipmitool's command line.
    await h.operator.oob.bootDevice({ id, device: "disk", persistent: true });
    expect(calls.at(-1)!.args.join(" ")).toMatch(/chassis bootdev disk options=persistent,efiboot$/);
    expect(sim.boot()).toBe("default");
    // Back to BIOS: no EFI flag.
    await h.operator.machines.update({ id, firmware: "bios" });
    await h.operator.oob.bootDevice({ id, device: "pxe" });
    expect(calls.at(-1)!.args.join(" ")).toMatch(/chassis bootdev pxe$/);
    expect(sim.boot()).toBe("pxe");
    const msgs = h.db.select().from(events).where(eq(events.machineId, id)).all().map((e) => e.message);
    expect(msgs).toContain("Boot device disk (persistent, UEFI)");
  });

  it("viewers cannot act; machines without a BMC get a typed error", async () => {
    await expectTrpcError(h.viewer.oob.power({ selection: { ids: [id] }, action: "on" }), "FORBIDDEN");
    await expectTrpcError(h.viewer.oob.checkBmc({ id }), "FORBIDDEN");
    const { id: bare } = await h.operator.machines.enroll(machineInput(990, { name: "no-bmc" }));
    await expectTrpcError(h.operator.oob.checkBmc({ id: bare }), "PRECONDITION_FAILED", "BMC_NOT_CONFIGURED");
    const r = await h.operator.oob.power({ selection: { ids: [bare, id] }, action: "on" });
    expect(r.map((x) => [x.ok, x.code])).toEqual([
      [false, "BMC_NOT_CONFIGURED"],
      [true, undefined],
    ]);
  });
});

describe("failures", () => {
  it("a wrong password is an authentication error at once: one ipmitool run, no retry storm; manage refused", async () => {
    const id = await enrollAt(sim.port, "not-the-password");
    const before = calls.length;
    const r = await h.operator.oob.checkBmc({ id });
    expect(r).toMatchObject({ reachable: false, code: "BMC_AUTH_FAILED" });
    expect(calls.length - before).toBe(1);
    const { shape } = await expectTrpcError(h.operator.machines.action({ id, action: "manage" }), "PRECONDITION_FAILED", "BMC_AUTH_FAILED");
    expect(shape.message).toMatch(/stays enrolled: BMC verification failed/);
    expect((await h.viewer.machines.get({ id })).state).toBe("enrolled");
    expect(calls.length - before).toBe(2);
  });

  it("a BMC that never answers: the timeout kills ipmitool, retried with backoff, then fails cleanly", async () => {
    // A UDP socket that swallows every packet: ipmitool would wait ~20 s; our timeout is 4 s... set lower here.
    const silent = dgram.createSocket("udp4");
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
    const port = silent.address().port;
    const h2 = createHarness({ oob: { callTimeoutMs: 700, attempts: 2, backoffMs: 100 }, observe: (c) => calls.push(c) });
    try {
      const { id } = await h2.operator.machines.enroll(machineInput(1, { bmc: { address: "127.0.0.1", port, username: "u", password: "SILENT-SECRET-77" } }));
      const before = calls.length;
      // While ipmitool waits, its command line is public: it must not carry the password.
      const seen = new Set<number>();
      let leaked = false;
      const poll = setInterval(() => {
        for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
          let cmd = "";
          try {
            cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
          } catch {
            continue;
          }
          if (cmd.startsWith("ipmitool\0") && cmd.includes(`\0${port}\0`)) {
            seen.add(Number(pid));
            if (cmd.includes("SILENT-SECRET-77") || cmd.includes("\0-P\0")) leaked = true;
          }
        }
      }, 50);
      const t0 = Date.now();
      const r = await h2.operator.oob.checkBmc({ id });
      clearInterval(poll);
      const took = Date.now() - t0;
      expect(r).toMatchObject({ reachable: false, code: "BMC_UNREACHABLE" });
      expect(r.error).toMatch(/did not answer within 700 ms/);
      expect(took).toBeGreaterThanOrEqual(1400);
      expect(took).toBeLessThan(4000);
      const mine = calls.slice(before);
      expect(mine).toHaveLength(2);
      expect(seen.size).toBeGreaterThanOrEqual(1);
      expect(leaked).toBe(false);
      for (const c of mine) expect(alive(c.pid!)).toBe(false);
      for (const c of mine) expect(c.args).not.toContain("SILENT-SECRET-77");
      expect(h2.db.select().from(machines).where(eq(machines.id, id)).get()!.state).toBe("enrolled");
    } finally {
      h2.close();
      silent.close();
    }
  });

  it("a BMC that is gone: unknown power state, and the machine is never cycled", async () => {
    const gone = await new IpmiSim("gone", { power: "on" }).start();
    const h3 = createHarness({ oob: { callTimeoutMs: 800, attempts: 1 } });
    try {
      const { id } = await h3.operator.machines.enroll(machineInput(2, { bmc: { address: "127.0.0.1", port: gone.port, username: SIM_USER, password: gone.password } }));
      await gone.kill();
      const [r] = await h3.operator.oob.power({ selection: { ids: [id] }, action: "cycle" });
      expect(r).toMatchObject({ ok: false, code: "POWER_STATE_UNKNOWN" });
      expect(r!.error).toMatch(/power state unknown, not cycling/);
      expect((await h3.viewer.machines.get({ id })).powerState).toBe("unknown");
      await gone.start();
      // No power change ever reached the chassis.
      expect(fs.existsSync(`${gone.chassisDir}/events.log`)).toBe(false);
      expect(gone.power()).toBe("on");
    } finally {
      h3.close();
      await gone.stop();
    }
  });

  it("the free-port helper gives distinct ports", async () => {
    expect(await freeUdpPort()).not.toBe(sim.port);
  });
});
