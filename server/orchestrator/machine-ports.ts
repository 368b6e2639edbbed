import type { Domain } from "../context";
import type { MachinePorts } from "./ports";
import { StepError } from "./retry";

/**
 * The production ports: out-of-band control (server/oob) and the boot tree (server/pxe). Until those modules
 * are wired in, every server step fails permanently with a message that says so, rather than pretending.
 */
export function createMachinePorts(_d: Domain): MachinePorts {
  const unavailable = (what: string) => () => Promise.reject(new StepError(`${what} is not available in this build`, false));
  return {
    setBootTarget: unavailable("the netboot tree"),
    setBootDevice: unavailable("out-of-band boot device control"),
    powerOn: unavailable("out-of-band power control"),
    powerCycle: unavailable("out-of-band power control"),
    powerOff: unavailable("out-of-band power control"),
  };
}
