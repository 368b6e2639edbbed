import { eq } from "drizzle-orm";
import { batchSettingsSchema, type BatchSettings } from "../../lib/batches";
import type { Actor, Domain } from "../context";
import type { Db } from "../db/client";
import { settings } from "../db/schema";
import { recordEvent } from "../events/audit";

const KEY = "batches.alerts";

/** Batch alert settings (webhook URL, public URL): stored values over defaults; an unparsable row falls back. */
export function getBatchSettings(db: Pick<Db, "select">): BatchSettings {
  const row = db.select().from(settings).where(eq(settings.key, KEY)).get();
  const parsed = batchSettingsSchema.safeParse(row?.value ?? {});
  return parsed.success ? parsed.data : batchSettingsSchema.parse({});
}

/** Replace the batch alert settings; recorded as an event. @throws ZodError on invalid URLs */
export function setBatchSettings(d: Domain, input: Partial<BatchSettings>, actor: Actor): BatchSettings {
  const next = batchSettingsSchema.parse({ ...getBatchSettings(d.db), ...input });
  const ev = d.db.transaction((tx) => {
    tx.insert(settings)
      .values({ key: KEY, value: next, updatedAt: new Date() })
      .onConflictDoUpdate({ target: settings.key, set: { value: next, updatedAt: new Date() } })
      .run();
    return recordEvent(tx, {
      actor,
      kind: "settings.changed",
      message: next.webhookUrl ? "Batch alert webhook set" : "Batch alert webhook removed",
      payload: { key: KEY, webhook: !!next.webhookUrl },
    });
  });
  d.bus.publish({ type: "event.created", event: ev });
  return next;
}
