import type { LifecycleAction } from "../../lib/lifecycle";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { createRack } from "../racks/racks";
import { osProfileCreateSchema } from "../../lib/netboot";
import { createProfile } from "../netboot/profiles";

// Paths through the lifecycle that leave a demo machine in a realistic state. None ends in a busy state
// (deploying, inspecting, cleaning): without a job behind it such a machine would never progress.
const PATHS: LifecycleAction[][] = [
  [],
  ["manage"],
  ["manage", "provide"],
  ["manage", "provide", "deploy", "succeed"],
  ["manage", "provide", "deploy", "succeed"],
  ["manage", "provide", "deploy", "succeed"],
  ["manage", "inspect", "fail"],
  ["manage", "inspect", "succeed"],
  ["manage", "provide", "deploy", "fail"],
  ["manage", "provide"],
];

/**
 * A small demo lab for a first start: three racks of machines on the `fake` BMC driver in assorted states.
 * Runs only on an empty database (no racks), so it never touches real data.
 */
export async function seedDemoLab(d: Domain): Promise<void> {
  const store = storeOf(d);
  if ((await store.db.select({ id: store.t.racks.id }).from(store.t.racks).limit(1)).length > 0) return;
  const actor = "system:demo";
  // Deploys in the demo are run by simulated agents (./demo-agents.ts): the image is never downloaded.
  const { id: osProfileId } = await createProfile(
    d,
    osProfileCreateSchema.parse({
      name: "Demo image (simulated)",
      kind: "image",
      osFamily: "debian",
      imageUrl: "http://images.invalid/demo-debian-12.raw.gz",
      imageSha256: "0".repeat(64),
      imageFormat: "raw.gz",
    }),
    actor,
  );
  let k = 0;
  for (const [ri, name] of ["dc1-r01", "dc1-r02", "dc1-r03"].entries()) {
    const { id: rackId } = await createRack(d, { name, site: "dc1", row: "A", heightU: 42 }, actor);
    for (let slot = 0; slot < 12; slot++) {
      k++;
      const uHeight = slot % 4 === 3 ? 2 : 1;
      const { id } = await enrollMachine(
        d,
        {
          name: `node-${String(ri + 1).padStart(2, "0")}-${String(slot + 1).padStart(2, "0")}`,
          rackId,
          uPosition: 2 + slot * 3,
          uHeight,
          bootMac: `52:54:00:de:${(ri + 1).toString(16).padStart(2, "0")}:${(slot + 1).toString(16).padStart(2, "0")}`,
          ip: `10.42.${ri + 1}.${10 + slot}`,
          osProfileId,
          bmc: { driver: "fake", address: `10.43.${ri + 1}.${slot === 5 ? 254 : 10 + slot}`, port: 623, username: "admin", password: `demo-${k}`, privilege: "ADMINISTRATOR", cipherSuite: 3 },
        },
        actor,
      );
      for (const action of PATHS[k % PATHS.length]!) {
        await transition(d, id, action, { actor, reason: action === "fail" ? (PATHS[k % PATHS.length]!.includes("deploy") ? "image checksum mismatch (demo)" : "BMC timed out during inventory (demo)") : undefined });
      }
    }
  }
  d.log.info("seeded the demo lab: 3 racks, 36 machines on the fake driver");
}
