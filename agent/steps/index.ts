import type { AgentStepName } from "../../lib/jobs";
import { bootloader } from "./bootloader";
import { clearDisks } from "./clear-disks";
import { configureNetwork } from "./configure-network";
import { configureOs } from "./configure-os";
import { debootstrap } from "./debootstrap";
import { partition } from "./partition";
import type { StepHandler } from "./context";
import { inventory } from "./inventory";
import { raid } from "./raid";
import { reboot } from "./reboot";
import { runScript } from "./run-script";
import { wipe } from "./wipe";
import { writeImage } from "./write-image";

/** Every agent step the server may hand out (lib/jobs.ts AGENT_STEPS), by name. */
export const STEP_HANDLERS: Record<AgentStepName, StepHandler> = {
  inventory,
  wipe,
  raid,
  write_image: writeImage,
  configure_network: configureNetwork,
  run_script: runScript,
  reboot,
  clear_disks: clearDisks,
  partition,
  debootstrap,
  configure_os: configureOs,
  bootloader,
};
