/** Provisioning network settings, stored as JSON in `settings` under the key "netboot". */
import { eq } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { formatIssues } from "../../lib/schemas";
import { netbootSettingsSchema, type NetbootSettings, type NetbootSettingsInput } from "../../lib/netboot";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { settings } from "../db/schema";
import { recordEvent } from "../events/audit";

const KEY = "netboot";

/** Stored settings, or the defaults (mode off) when none were saved. A stored value that no longer parses is reported. */
export function getNetbootSettings(db: Db): NetbootSettings {
  const row = db.select().from(settings).where(eq(settings.key, KEY)).get();
  const r = netbootSettingsSchema.safeParse(row?.value ?? {});
  if (!r.success) throw new AppError("VALIDATION", `Stored netboot settings are invalid: ${formatIssues(r.error).map((i) => `${i.field}: ${i.message}`).join("; ")}`);
  return r.data;
}

/** Validate and save; publishes netboot.changed (the netboot service reconciles and switches mode). @throws AppError VALIDATION */
export function saveNetbootSettings(d: Domain, input: NetbootSettingsInput, actor: Actor): NetbootSettings {
  const r = netbootSettingsSchema.safeParse(input);
  if (!r.success) {
    const details = formatIssues(r.error);
    throw new AppError("VALIDATION", details.map((i) => `${i.field}: ${i.message}`).join("; "), details);
  }
  const value = r.data;
  d.db.transaction((tx) => {
    tx.insert(settings)
      .values({ key: KEY, value, updatedAt: new Date() })
      .onConflictDoUpdate({ target: settings.key, set: { value, updatedAt: new Date() } })
      .run();
    recordEvent(tx, { actor, machineId: null, kind: "netboot.settings", message: `Netboot settings saved (mode ${value.mode})`, payload: { mode: value.mode } });
  });
  d.bus.publish({ type: "netboot.changed" });
  return value;
}
