/**
 * The ipmitool driver (`-I lanplus`). Every command goes through the scheduler (one at a time per BMC, spaced,
 * transient failures retried); see exec.ts for how ipmitool is run.
 */
import { AppError } from "../../lib/errors";
import { BmcError } from "./errors";
import { bmcKey, runIpmitool, type CallObserver } from "./exec";
import { openSolConsole } from "./ipmitool-console";
import type { BmcScheduler } from "./scheduler";
import { nativeProbeSupports, probeDeviceId, probePower } from "./rmcp/probe";
import type { BmcTarget, OobConfig, OobDriver, PowerAction, ProbeStats } from "./types";

/** Parameters ipmitool itself would choke on, refused before any process is started. */
function validateTarget(t: BmcTarget): void {
  if (!t.address || /\s/.test(t.address) || t.address.startsWith("-")) throw new AppError("VALIDATION", `Invalid BMC address "${t.address}"`);
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new AppError("VALIDATION", `Invalid BMC port ${t.port}`);
  if (!t.username || t.username.startsWith("-")) throw new AppError("VALIDATION", "The BMC user name is missing or invalid");
  if (!t.password) throw new AppError("VALIDATION", "The BMC password is missing");
  // IPMI 2.0 passwords are at most 20 bytes; ipmitool refuses longer ones (without saying which BMC).
  if (Buffer.byteLength(t.password) > 20) throw new AppError("VALIDATION", "IPMI passwords are at most 20 bytes; this BMC's stored password is longer");
  if (!Number.isInteger(t.cipherSuite) || t.cipherSuite < 0 || t.cipherSuite > 17) throw new AppError("VALIDATION", `Invalid cipher suite ${t.cipherSuite}`);
}

const POWER_COMMAND: Record<PowerAction, string> = { on: "on", off: "off", cycle: "cycle", reset: "reset", soft: "soft" };

export function createIpmitoolDriver(deps: { config: OobConfig; scheduler: BmcScheduler; observe?: CallObserver; probeStats?: ProbeStats }): OobDriver {
  const { config, scheduler, observe } = deps;
  const stats = deps.probeStats ?? { native: 0, fallback: 0, ipmitool: 0 };
  const run = (t: BmcTarget, command: string[]) => scheduler.call(bmcKey(t), () => runIpmitool(config, t, command, observe));

  /**
   * A status read: the native RMCP+ probe first (in the BMC's turn, like any command), and on any failure of it
   * the same read by ipmitool, which then gives the verdict (and its error classification) on its own.
   */
  async function read<T>(t: BmcTarget, native: () => Promise<T>, viaIpmitool: () => Promise<T>): Promise<T> {
    if (config.statusProbe === "native" && nativeProbeSupports(t)) {
      try {
        const r = await scheduler.exclusive(bmcKey(t), native);
        stats.native++;
        return r;
      } catch (err) {
        stats.fallback++;
        stats.lastFallbackReason = `${bmcKey(t)}: ${(err as Error).message}`;
      }
    } else stats.ipmitool++;
    return viaIpmitool();
  }
  const probe = { stepTimeoutMs: config.probeStepTimeoutMs };

  return {
    name: "ipmitool",
    power: {
      validate: validateTarget,
      getPower(t) {
        return read(
          t,
          () => probePower(t, probe),
          async () => {
            const out = await run(t, ["chassis", "power", "status"]);
            const m = /Chassis Power is (on|off)/i.exec(out);
            if (!m) throw new BmcError("other", `BMC ${bmcKey(t)} gave an unreadable power status: ${out.trim().slice(0, 80)}`);
            return m[1]!.toLowerCase() as "on" | "off";
          },
        );
      },
      async setPower(t, action) {
        await run(t, ["chassis", "power", POWER_COMMAND[action]]);
      },
    },
    bootDevice: {
      validate: validateTarget,
      async setBootDevice(t, device, persistent, efi = false) {
        // ipmitool's "disk" is the hard drive selector; "options=persistent" keeps it past the next boot,
        // "efiboot" sets the EFI boot type bit (a UEFI server would otherwise be asked for a legacy boot).
        const options = [...(persistent ? ["persistent"] : []), ...(efi ? ["efiboot"] : [])];
        await run(t, ["chassis", "bootdev", device, ...(options.length ? [`options=${options.join(",")}`] : [])]);
      },
    },
    reachability: {
      validate: validateTarget,
      check(t) {
        return read(
          t,
          async () => {
            const id = await probeDeviceId(t, probe);
            return { info: `IPMI ${id.ipmiVersion}, firmware ${id.firmware}` };
          },
          async () => {
            const out = await run(t, ["mc", "info"]);
            const fw = /Firmware Revision\s*:\s*(\S+)/.exec(out)?.[1];
            const ver = /IPMI Version\s*:\s*(\S+)/.exec(out)?.[1];
            return { info: `IPMI ${ver ?? "?"}, firmware ${fw ?? "?"}` };
          },
        );
      },
    },
    console: {
      validate: validateTarget,
      open: (t) => openSolConsole({ config, scheduler, observe }, t),
    },
  };
}
