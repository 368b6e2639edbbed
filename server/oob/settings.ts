import { eq } from "drizzle-orm";
import { powerSyncSettingsSchema, type PowerSyncSettings } from "../../lib/schemas";
import type { Actor, Domain } from "../context";
import { forUpdate } from "../db/sql";
import { storeOf, type Store } from "../db/store";
import { recordStoreEvent } from "../events/audit";

const KEY = "oob.powerSync";

/** Power sync settings: stored values over defaults (a stored value that no longer parses falls back to defaults). */
export async function getPowerSyncSettings(store: Store): Promise<PowerSyncSettings> {
  const { settings } = store.t;
  const [row] = await store.db.select().from(settings).where(eq(settings.key, KEY)).limit(1);
  const parsed = powerSyncSettingsSchema.safeParse(row?.value ?? {});
  return parsed.success ? parsed.data : powerSyncSettingsSchema.parse({});
}

/** Validated over the stored settings and written with its event in one transaction; the running loop reschedules. */
export async function setPowerSyncSettings(d: Domain, patch: Partial<PowerSyncSettings>, actor: Actor): Promise<PowerSyncSettings> {
  const store = storeOf(d);
  const { settings } = store.t;
  const next = await store.transaction(async (tx) => {
    // Read the stored value under its row lock (created first if missing): two processes patching different fields
    // at once keep both patches.
    await tx.insert(settings).values({ key: KEY, value: {}, updatedAt: new Date() }).onConflictDoNothing({ target: settings.key });
    const [row] = await forUpdate(store.dialect, tx.select().from(settings).where(eq(settings.key, KEY)).limit(1));
    const stored = powerSyncSettingsSchema.safeParse(row?.value ?? {});
    const value = powerSyncSettingsSchema.parse({ ...(stored.success ? stored.data : {}), ...patch });
    await tx.update(settings).set({ value, updatedAt: new Date() }).where(eq(settings.key, KEY));
    await recordStoreEvent(store, tx, { actor, kind: "settings.changed", message: `Power sync settings changed`, payload: { key: KEY, ...value } });
    return value;
  });
  d.oob.sync.settingsChanged?.();
  return next;
}
