/**
 * One of several processes enrolling machines with auto addresses into the same SQLite file at once
 * (allocate.int.test.ts). argv: dbFile dataDir workerIndex count subnetId(s, comma-separated) batch|single
 */
import { EventBus } from "../../events/bus";
import { SecretBox } from "../../auth/secrets";
import { openDatabase } from "../../db/client";
import { enrollMany } from "../../machines/bulk-enroll";
import { enrollMachine } from "../../machines/enroll";
import { silentLogger } from "../../log";
import type { Domain } from "../../context";
import { machineEnrollSchema } from "../../../lib/schemas";

const [dbFile, dataDir, w, count, subnetList, how] = process.argv.slice(2);
const db = openDatabase(dbFile!);
const d = { db, bus: new EventBus(), secrets: SecretBox.open(dataDir!), log: silentLogger, oob: undefined as never } satisfies Domain;
const subnetIds = subnetList!.split(",").map(Number);
const worker = Number(w);
const n = Number(count);
const input = (i: number) =>
  machineEnrollSchema.parse({
    name: `w${worker}-m${i}`,
    bootMac: `52:54:01:${worker.toString(16).padStart(2, "0")}:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
    network: { subnetId: subnetIds[i % subnetIds.length], addressMode: "auto" },
  });
let done = 0;
if (how === "batch") {
  for (let i = 0; i < n; i += 10) {
    done += (await enrollMany(d, Array.from({ length: Math.min(10, n - i) }, (_, k) => input(i + k)), "test")).ids.length;
  }
} else {
  for (let i = 0; i < n; i++) {
    await enrollMachine(d, input(i), "test");
    done++;
  }
}
process.stdout.write(JSON.stringify({ worker, done }) + "\n");
db.$client.close();
