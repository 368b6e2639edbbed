import type { Domain } from "../context";
import { powerAction, setBootDevice } from "../oob/power";
import type { NetbootService } from "../netboot/service";
import type { MachinePorts } from "./ports";
import { StepFailure } from "../../lib/step-failure";

const ACTOR = "system:orchestrator";

/**
 * The production ports: out-of-band control through the machine's BMC driver (server/oob), and the machine's
 * boot entries in the netboot tree (server/netboot), which follow the job's set_boot_target steps.
 */
export function createMachinePorts(d: Domain, netboot: NetbootService): MachinePorts {
  return {
    setBootTarget: async (id) => {
      try {
        await netboot.applyMachine(id);
      } catch (err) {
        // A tree that cannot be written now (disk full, a dnsmasq restart) may be writable in a moment.
        throw new StepFailure((err as Error).message, true);
      }
    },
    setBootDevice: (id, device, persistent) => setBootDevice(d, id, device, persistent, ACTOR),
    powerOn: async (id) => void (await powerAction(d, id, "on", ACTOR)),
    powerCycle: async (id) => void (await powerAction(d, id, "cycle", ACTOR)),
    powerOff: async (id) => void (await powerAction(d, id, "off", ACTOR)),
  };
}
