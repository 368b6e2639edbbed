/**
 * Power, boot device and BMC checks for machines: the domain functions behind the tRPC procedures and the
 * lifecycle's BMC verification. They never throw for one machine of many: bulk callers get per-machine results.
 */
import { eq } from "drizzle-orm";
import type { BmcCheckResult } from "../../lib/dto";
import { effectiveFirmware } from "../../lib/schemas";
import { AppError } from "../../lib/errors";
import type { Actor, Domain } from "../context";
import { storeOf } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { loadBmc, recordBmcOutcome, setPowerState, type BmcHandle } from "./bmc-state";
import { BmcError } from "./errors";
import type { BootDevice, ChassisPower, PowerAction } from "./types";

import { backoffDelay, sleep } from "../../lib/retry";

/** Run a BMC call and record reachability from its outcome. Only BMC errors count as the BMC's failures. */
async function talk<T>(d: Domain, h: BmcHandle, actor: Actor, fn: () => Promise<T>): Promise<T> {
  try {
    const r = await fn();
    await recordBmcOutcome(d, h.target.machineId, { ok: true }, actor);
    return r;
  } catch (err) {
    if (err instanceof BmcError) await recordBmcOutcome(d, h.target.machineId, { ok: false, error: err.message }, actor);
    throw err;
  }
}

/** Ask the BMC for the power state and record it. @throws AppError BMC_* */
export async function readPower(d: Domain, machineId: number, actor: Actor, how = "read from the BMC"): Promise<ChassisPower> {
  const h = await loadBmc(d, machineId);
  h.driver.power.validate(h.target);
  const p = await talk(d, h, actor, () => h.driver.power.getPower(h.target));
  await setPowerState(d, machineId, p, actor, how);
  return p;
}

/**
 * Poll until the BMC reports `want`, with backoff (25 ms doubling to 1 s) up to `confirmTimeoutMs`.
 * @throws AppError POWER_STATE_UNKNOWN when it never does
 */
async function confirmPower(d: Domain, h: BmcHandle, want: ChassisPower): Promise<void> {
  const deadline = Date.now() + d.oob.config.confirmTimeoutMs;
  for (let polls = 0; ; polls++) {
    const p = await h.driver.power.getPower(h.target);
    if (p === want) return;
    const delay = backoffDelay(polls, { baseMs: 25, maxMs: 1000 });
    if (Date.now() + delay > deadline) {
      throw new AppError("POWER_STATE_UNKNOWN", `${h.machineName}: the BMC accepted the command but still reports power ${p}`);
    }
    await sleep(delay);
  }
}

/**
 * One power action on one machine, confirmed by polling. Cycle and reset need a known current state (read
 * first): a machine whose power state cannot be read is never cycled; cycling a machine that is off powers it on.
 * @throws AppError BMC_*, POWER_STATE_UNKNOWN, MACHINE_NOT_FOUND
 */
export async function powerAction(d: Domain, machineId: number, action: PowerAction, actor: Actor): Promise<ChassisPower> {
  const h = await loadBmc(d, machineId);
  h.driver.power.validate(h.target);
  let command = action;
  if (action === "cycle" || action === "reset") {
    let current: ChassisPower;
    try {
      current = await talk(d, h, actor, () => h.driver.power.getPower(h.target));
    } catch (err) {
      await setPowerState(d, machineId, "unknown", actor, "power state unreadable");
      throw new AppError("POWER_STATE_UNKNOWN", `${h.machineName}: power state unknown, not ${action === "cycle" ? "cycling" : "resetting"} (${(err as Error).message})`);
    }
    await setPowerState(d, machineId, current, actor, "read before " + action);
    if (current === "off") command = "on";
  }
  const want: ChassisPower = command === "off" || command === "soft" ? "off" : "on";
  await talk(d, h, actor, async () => {
    await h.driver.power.setPower(h.target, command);
    await confirmPower(d, h, want);
  });
  await setPowerState(d, machineId, want, actor, `power ${action} by ${actor}`);
  return want;
}

/** Set the next boot device (once, or persistent); recorded as an event. @throws AppError BMC_* */
export async function setBootDevice(d: Domain, machineId: number, device: BootDevice, persistent: boolean, actor: Actor): Promise<void> {
  const h = await loadBmc(d, machineId);
  h.driver.bootDevice.validate(h.target);
  // UEFI machines (set, or learned from their DHCP requests) get the EFI boot type flag.
  const { db, t } = storeOf(d);
  const [fw] = await db.select({ setting: t.machines.firmware, learned: t.machines.bootFirmware }).from(t.machines).where(eq(t.machines.id, machineId)).limit(1);
  const efi = effectiveFirmware(fw?.setting, fw?.learned) === "uefi";
  await talk(d, h, actor, () => h.driver.bootDevice.setBootDevice(h.target, device, persistent, efi));
  d.bus.publish({ type: "event.created", event: await recordBootEvent(d, machineId, h.machineName, device, persistent, actor, efi) });
}

async function recordBootEvent(d: Domain, machineId: number, name: string, device: BootDevice, persistent: boolean, actor: Actor, efi = false) {
  const store = storeOf(d);
  const ev = await recordStoreEvent(store, store.db, {
    actor,
    machineId,
    kind: "bootdev.set",
    message: `Boot device ${device === "pxe" ? "PXE" : "disk"} (${persistent ? "persistent" : "next boot only"}${efi ? ", UEFI" : ""})`,
    payload: { device, persistent, efi },
  });
  return { ...ev, machineName: name };
}

/** "Ping the BMC": one authenticated request with the stored credentials; never throws for BMC failures. */
export async function checkBmc(d: Domain, machineId: number, actor: Actor): Promise<BmcCheckResult> {
  const h = await loadBmc(d, machineId);
  try {
    h.driver.reachability.validate(h.target);
    const { info } = await talk(d, h, actor, () => h.driver.reachability.check(h.target));
    return { reachable: true, info };
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { reachable: false, error: err.message, code: err.code };
  }
}

/**
 * The lifecycle's BMC verification (enrolled → manageable): the BMC must answer with the stored credentials.
 * Reads the power state on the way, so a freshly managed machine shows a real badge.
 * @throws AppError BMC_UNREACHABLE, BMC_AUTH_FAILED, BMC_ERROR, VALIDATION
 */
export async function verifyBmc(d: Domain, machineId: number, actor: Actor): Promise<void> {
  const h = await loadBmc(d, machineId);
  h.driver.reachability.validate(h.target);
  h.driver.power.validate(h.target);
  await talk(d, h, actor, () => h.driver.reachability.check(h.target));
  await readPower(d, machineId, actor, "read at BMC verification");
}
