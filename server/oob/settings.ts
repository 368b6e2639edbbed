import { eq } from "drizzle-orm";
import { powerSyncSettingsSchema, type PowerSyncSettings } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { settings } from "../db/schema";
import { recordEvent } from "../events/audit";

const KEY = "oob.powerSync";

/** Power sync settings: stored values over defaults (a stored value that no longer parses falls back to defaults). */
export function getPowerSyncSettings(db: Db): PowerSyncSettings {
  const row = db.select().from(settings).where(eq(settings.key, KEY)).get();
  const parsed = powerSyncSettingsSchema.safeParse(row?.value ?? {});
  return parsed.success ? parsed.data : powerSyncSettingsSchema.parse({});
}

export function setPowerSyncSettings(d: Domain, patch: Partial<PowerSyncSettings>, actor: Actor): PowerSyncSettings {
  const next = powerSyncSettingsSchema.parse({ ...getPowerSyncSettings(d.db), ...patch });
  d.db.transaction((tx) => {
    tx.insert(settings)
      .values({ key: KEY, value: next, updatedAt: new Date() })
      .onConflictDoUpdate({ target: settings.key, set: { value: next, updatedAt: new Date() } })
      .run();
    recordEvent(tx, { actor, kind: "settings.changed", message: `Power sync settings changed`, payload: { key: KEY, ...next } });
  });
  d.oob.sync.settingsChanged?.();
  return next;
}
