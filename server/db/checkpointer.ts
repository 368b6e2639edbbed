/**
 * WAL checkpoints off the event loop. With WAL, SQLite's automatic checkpoint runs inside whichever commit crosses
 * the threshold and fsyncs the database file there, on the main thread: under disk pressure that stalled the event
 * loop for hundreds of milliseconds (bench:deploy saw 260 ms). A worker thread with its own connection checkpoints
 * (PASSIVE: never blocks writers) every second instead; the main connection keeps a far higher automatic threshold
 * only as a safety net should the worker die.
 * The worker is kept small (~7.5 MiB of RSS instead of ~9): a checkpoint needs no page cache of its own and no heap
 * to speak of, so its connection has a 64 KiB cache and its isolate an 8 MiB old generation.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { Logger } from "../log";

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 5000");
db.pragma("cache_size = -64");
const tick = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
};
const timer = setInterval(tick, workerData.everyMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  tick();
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(sqlite: Database.Database, file: string, log: Logger, everyMs = 1000): Checkpointer {
  // The automatic checkpoint stays as a safety net (~40 MB of WAL), far above what a second of writes adds.
  sqlite.pragma("wal_autocheckpoint = 10000");
  sqlite.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
  const module = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, file, everyMs }, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8, stackSizeMb: 1 } });
  worker.unref();
  let stopped = false;
  worker.on("message", (m: { error?: string }) => m.error && log.warn("WAL checkpoint failed", { error: m.error }));
  worker.on("error", (e) => log.error("WAL checkpointer died; SQLite's automatic checkpoint takes over", { error: e.message }));
  worker.on("exit", (code) => {
    if (!stopped) {
      log.warn("WAL checkpointer exited; SQLite's automatic checkpoint takes over", { code });
      sqlite.pragma("wal_autocheckpoint = 1000");
    }
  });
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      const done = new Promise<void>((resolve) => {
        worker.once("message", () => resolve());
        worker.once("exit", () => resolve());
      });
      worker.postMessage("stop");
      await Promise.race([done, new Promise((r) => setTimeout(r, 2000))]);
      await worker.terminate();
    },
  };
}
