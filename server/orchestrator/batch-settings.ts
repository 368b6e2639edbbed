import { eq } from "drizzle-orm";
import { batchSettingsSchema, type BatchSettings } from "../../lib/batches";
import type { Actor, Domain } from "../context";
import { storeOf, type Store, type StoreDb, type StoreTx } from "../db/store";
import { recordStoreEvent } from "../events/audit";

const KEY = "batches.alerts";

/** Batch alert settings (webhook URL, public URL): stored values over defaults; an unparsable row falls back. */
export async function getBatchSettings(store: Store, db: StoreDb | StoreTx = store.db): Promise<BatchSettings> {
  const { settings } = store.t;
  const [row] = await db.select().from(settings).where(eq(settings.key, KEY)).limit(1);
  const parsed = batchSettingsSchema.safeParse(row?.value ?? {});
  return parsed.success ? parsed.data : batchSettingsSchema.parse({});
}

/** Replace the batch alert settings; recorded as an event. @throws ZodError on invalid URLs */
export async function setBatchSettings(d: Domain, input: Partial<BatchSettings>, actor: Actor): Promise<BatchSettings> {
  const store = storeOf(d);
  const { settings } = store.t;
  const next = batchSettingsSchema.parse({ ...(await getBatchSettings(store)), ...input });
  const ev = await store.transaction(async (tx) => {
    await tx
      .insert(settings)
      .values({ key: KEY, value: next, updatedAt: new Date() })
      .onConflictDoUpdate({ target: settings.key, set: { value: next, updatedAt: new Date() } });
    return recordStoreEvent(store, tx, {
      actor,
      kind: "settings.changed",
      message: next.webhookUrl ? "Batch alert webhook set" : "Batch alert webhook removed",
      payload: { key: KEY, webhook: !!next.webhookUrl },
    });
  });
  d.bus.publish({ type: "event.created", event: ev });
  return next;
}
