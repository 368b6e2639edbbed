/**
 * The fake driver: unit tests and the demo lab only. Each BMC is an in-memory chassis keyed by address:port,
 * held by the driver instance (no module state). A BMC whose address ends in ".254" never answers, so the demo
 * shows what an unreachable BMC looks like.
 */
import { AppError } from "../../lib/errors";
import { BmcError } from "./errors";
import { bmcKey } from "./exec";
import type { BmcTarget, BootDevice, ChassisPower, ConsoleStream, OobDriver } from "./types";

interface FakeChassis {
  power: ChassisPower;
  boot: { device: BootDevice; persistent: boolean; efi?: boolean } | null;
}

export function createFakeDriver(): OobDriver & { chassis: (t: Pick<BmcTarget, "address" | "port">) => FakeChassis } {
  const chassis = new Map<string, FakeChassis>();
  const get = (t: Pick<BmcTarget, "address" | "port">) => {
    const key = bmcKey(t);
    let c = chassis.get(key);
    if (!c) {
      // Deterministic but varied starting state, so a demo fleet is not all dark.
      const last = Number(t.address.split(".").pop()) || 0;
      c = { power: last % 3 === 0 ? "off" : "on", boot: null };
      chassis.set(key, c);
    }
    return c;
  };
  const answer = (t: BmcTarget) => {
    if (t.address.endsWith(".254")) return Promise.reject(new BmcError("transient", `BMC ${bmcKey(t)} is unreachable (fake)`));
    if (t.password === "wrong") return Promise.reject(new BmcError("auth", `BMC ${bmcKey(t)} refused the credentials (fake)`));
    return Promise.resolve(get(t));
  };
  const validate = (t: BmcTarget) => {
    if (!t.address) throw new AppError("VALIDATION", "BMC address is missing");
  };

  return {
    name: "fake",
    chassis: get,
    power: {
      validate,
      getPower: async (t) => (await answer(t)).power,
      async setPower(t, action) {
        const c = await answer(t);
        c.power = action === "off" || action === "soft" ? "off" : "on";
      },
    },
    bootDevice: {
      validate,
      async setBootDevice(t, device, persistent, efi = false) {
        (await answer(t)).boot = { device, persistent, efi };
      },
    },
    reachability: {
      validate,
      async check(t) {
        await answer(t);
        return { info: "fake BMC" };
      },
    },
    console: {
      validate,
      async open(t): Promise<ConsoleStream> {
        await answer(t);
        const data: ((b: Buffer) => void)[] = [];
        const closers: ((r: string) => void)[] = [];
        let n = 0;
        const emit = (s: string) => data.forEach((l) => l(Buffer.from(s)));
        const timer = setInterval(() => emit(`fake console line ${n++}\r\n`), 1000);
        return {
          write: (d) => emit(String(d).replace(/\r/g, "\r\n")),
          onData: (l) => void data.push(l),
          onClose: (l) => void closers.push(l),
          close() {
            clearInterval(timer);
            closers.forEach((l) => l("closed"));
            return Promise.resolve();
          },
        };
      },
    },
  };
}
