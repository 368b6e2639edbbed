import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { rackDown, rackUp } from "./lab/rack";
import { startLabRackhand } from "./lab/rackhand";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rh-repro-"));
const agent = path.join(work, "agent.mjs");
fs.writeFileSync(agent, "// fake");
const rack = await rackUp({ dir: path.join(work, "rack"), prefix: "rqz1", net: "10.139.77", nodes: 2, memMiB: 1024, diskMiB: 96, firmware: ["uefi", "secureboot"] });
try {
  const rh = await startLabRackhand({ dir: work, rack, agent, cacheDir: "/tmp/rackhand-lab-cache", marker: "RACKHAND-OS-UP", adminPassword: "uefi-vm-test-admin-password", imageFirmware: "uefi", machineFirmware: "uefi" });
  console.log("OK", rh.machines.map((m) => m.machineId));
  await rh.close();
} catch (e) {
  console.log("FAIL", e);
} finally {
  await rackDown(path.join(work, "rack"));
  console.log(work);
}
