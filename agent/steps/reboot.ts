import { run } from "../exec";
import type { StepHandler } from "./context";

/**
 * Reboot into what was installed: sync, report success, then `reboot -f` (no init system in the RAM disk to
 * ask). The result goes out first, or the server would only learn of it from the step's timeout.
 */
export const reboot: StepHandler = async ({ log, config, afterReport }) => {
  await run("sync", []);
  if (config.noReboot) {
    log("reboot requested; skipped (--no-reboot)");
    return { rebooting: false };
  }
  log("rebooting after the result is reported");
  afterReport(async () => {
    await run("sync", []);
    await run("reboot", ["-f"]);
  });
  return { rebooting: true };
};
