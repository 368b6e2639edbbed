import type { SecretBox } from "./auth/secrets";
import type { Db } from "./db/client";
import type { Store } from "./db/store";
import type { EventBus } from "./events/bus";
import type { Logger } from "./log";
import type { OobRuntime } from "./oob/registry";

/** What domain functions need, injected by the entry point (or a test). No module-level singletons. */
export interface Domain {
  db: Db;
  /**
   * The async Store (server/db/store.ts) of the converted slices (server/auth today). Absent: the Store over `db`
   * (`storeOf`). With PostgreSQL it is the only database those slices use.
   */
  store?: Store;
  bus: EventBus;
  secrets: SecretBox;
  log: Logger;
  /** Out-of-band drivers, the per-BMC scheduler and their config. */
  oob: OobRuntime;
}

/** Who did it, as written into events: "user:<name>", "system" or "agent". */
export type Actor = string;
