/**
 * One of several processes enrolling machines with auto addresses into the same database at once
 * (allocate.int.test.ts). argv: dataDir workerIndex count subnetId(s, comma-separated) batch|single [databaseUrl]:
 * the SQLite file rackhand.db in dataDir, or the PostgreSQL database at databaseUrl.
 */
import { EventBus } from "../../events/bus";
import { SecretBox } from "../../auth/secrets";
import { noSqliteOnPostgres } from "../../db/client";
import { openStore, sqliteDbOf } from "../../db/store";
import { enrollMany } from "../../machines/bulk-enroll";
import { enrollMachine } from "../../machines/enroll";
import { silentLogger } from "../../log";
import type { Domain } from "../../context";
import { machineEnrollSchema } from "../../../lib/schemas";

const [dataDir, w, count, subnetList, how, databaseUrl] = process.argv.slice(2);
const store = await openStore(dataDir!, databaseUrl);
const d = { db: store.dialect === "sqlite" ? sqliteDbOf(store) : noSqliteOnPostgres(), store, bus: new EventBus(), secrets: SecretBox.open(dataDir!), log: silentLogger, oob: undefined as never } satisfies Domain;
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
await store.close();
