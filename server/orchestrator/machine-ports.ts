import type { Domain } from "../context";
import { powerAction, setBootDevice } from "../oob/power";
import type { MachinePorts } from "./ports";
import { StepError } from "./retry";

const ACTOR = "system:orchestrator";

/**
 * The production ports: out-of-band control through the machine's BMC driver (server/oob), and the boot tree.
 * Until the netboot module is wired in, setting the boot target fails permanently with a message that says so.
 */
export function createMachinePorts(d: Domain): MachinePorts {
  return {
    setBootTarget: () => Promise.reject(new StepError("the netboot tree is not available in this build", false)),
    setBootDevice: (id, device, persistent) => setBootDevice(d, id, device, persistent, ACTOR),
    powerOn: async (id) => void (await powerAction(d, id, "on", ACTOR)),
    powerCycle: async (id) => void (await powerAction(d, id, "cycle", ACTOR)),
    powerOff: async (id) => void (await powerAction(d, id, "off", ACTOR)),
  };
}
