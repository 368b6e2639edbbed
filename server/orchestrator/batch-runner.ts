import { and, eq, inArray, isNull, or } from "drizzle-orm";
import { BATCH_KIND_LABELS, batchAction, passesThreshold, type BatchCounts, type BatchKind, type BatchState } from "../../lib/batches";
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import { forUpdate } from "../db/sql";
import { storeOf, type Store } from "../db/store";
import { recordStoreEvent } from "../events/audit";
import { getBatchSettings } from "./batch-settings";
import { countBatch, paramsOf, queuedJobs, updateParams, type Tx } from "./batch-store";
import { DEFAULT_WEBHOOK, postWebhook, type WebhookOptions } from "./batch-webhook";
import { startQueuedJob } from "./job-state";
import { InFlight } from "./in-flight";

export interface BatchRunnerOptions {
  /** The server's own address, for links in webhook payloads when no public URL is configured. */
  baseUrl: string;
  webhook?: Partial<WebhookOptions>;
}

interface Alert {
  batchId: number;
  url: string;
  body: Record<string, unknown>;
}

/**
 * Runs batches: starts their queued jobs up to the concurrency limit, judges the failure threshold as jobs finish,
 * pauses and alerts when it is passed, and closes batches with nothing left to run. It reacts to the bus
 * (job.changed of a batch's job, batch.changed from create/resume/abort); all state is in SQLite, so after a restart
 * start() picks up every open batch where it was.
 */
export class BatchRunner {
  private readonly dirty = new Set<number>();
  private pendingPump = false;
  private stopping = false;
  private unsubscribe: (() => void) | null = null;
  private readonly inFlight: InFlight;
  private readonly webhook: WebhookOptions;
  private readonly store: Store;
  private pumping: Promise<void> | null = null;

  constructor(
    private readonly d: Domain,
    private readonly opts: BatchRunnerOptions,
  ) {
    this.webhook = { ...DEFAULT_WEBHOOK, ...opts.webhook };
    this.inFlight = new InFlight((err) => d.log.error("batch runner pass failed", { error: String(err) }));
    this.store = storeOf(d);
  }

  /** Keep a background promise for stop(); its failure is logged, never thrown into the event loop. */
  private track(p: Promise<unknown>): Promise<void> {
    return this.inFlight.track(p);
  }

  async start(): Promise<void> {
    const { batches } = this.store.t;
    this.unsubscribe = this.d.bus.subscribe((e) => {
      // A batch's job that ended frees a slot and counts for the threshold. One that started was started here
      // (nothing to judge), so it does not cost the batch another pass.
      if (e.type === "job.changed" && e.batchId !== null && e.state !== "running" && e.state !== "queued") this.mark(e.batchId);
      else if (e.type === "batch.changed") this.mark(e.batchId);
    });
    const open = await this.store.db
      .select({ id: batches.id, params: batches.params })
      .from(batches)
      .where(or(inArray(batches.state, ["running", "paused"]), and(eq(batches.state, "aborted"), isNull(batches.finishedAt))));
    for (const b of open) {
      this.dirty.add(b.id);
      // An alert whose webhook was in flight when the process stopped is sent again.
      if (paramsOf(b).alert?.webhook.state === "sending") await this.resendAlert(b.id);
    }
    this.nudge();
  }

  /** Stop reacting; wait for webhook deliveries in flight (their retries end early). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    await this.inFlight.settle();
  }

  private mark(batchId: number): void {
    this.dirty.add(batchId);
    this.nudge();
  }

  private nudge(): void {
    if (this.pendingPump || this.stopping) return;
    this.pendingPump = true;
    setImmediate(() => {
      this.pendingPump = false;
      void this.pump();
    });
  }

  /**
   * Advance every batch that changed. Public so tests (and a restart) can force a pass. One pass at a time: a pass
   * asked for while one runs follows it.
   */
  pump(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    const after = this.pumping ?? Promise.resolve();
    const p = after.then(async () => {
      const ids = [...this.dirty];
      this.dirty.clear();
      for (const id of ids) if (!this.stopping) await this.advance(id);
    });
    const tracked = this.track(p);
    this.pumping = tracked;
    void tracked.finally(() => {
      if (this.pumping === tracked) this.pumping = null;
    });
    return tracked;
  }

  /** One batch, one transaction: threshold, then start jobs into free slots, then close it when nothing is left. */
  private async advance(batchId: number): Promise<void> {
    const live: LiveEvent[] = [];
    let alert: Alert | null = null;
    const store = this.store;
    const { batches } = store.t;
    await store.transaction(async (tx) => {
      live.length = 0;
      alert = null;
      // The batch's row locked on PostgreSQL: one process advances a batch at a time.
      const [b] = await forUpdate(store.dialect, tx.select().from(batches).where(eq(batches.id, batchId)));
      if (!b || b.finishedAt) return;
      let state = b.state as BatchState;
      let c = await countBatch(store, tx, batchId);
      if (state === "running") {
        const p = paramsOf(b);
        const failed = c.failed - p.baseline.failed;
        const finished = c.succeeded + c.failed - p.baseline.finished;
        const remaining = c.total - c.cancelled - p.baseline.finished;
        if (!p.alerted && passesThreshold(failed, finished, remaining, b.failureThreshold)) {
          if (c.queued > 0) state = "paused";
          alert = await this.raise(tx, b, state, { failed, finished }, c, live);
        }
      }
      if (state === "running") {
        const slots = b.concurrency - c.running;
        for (const job of slots > 0 ? await queuedJobs(store, tx, batchId, slots) : []) {
          // The counts follow what this pass did (no second count of the batch's jobs).
          c = { ...c, queued: c.queued - 1 };
          if (!(await startQueuedJob(this.d, tx, { ...job, batchId: b.id }, batchAction(b.kind as BatchKind), live))) {
            // Refused: that job failed. Judge the threshold again before starting more.
            c = { ...c, failed: c.failed + 1 };
            this.dirty.add(batchId);
            break;
          }
          c = { ...c, running: c.running + 1 };
        }
      }
      if (c.queued === 0 && c.running === 0 && (state === "running" || state === "aborted")) {
        const done: BatchState = state === "aborted" ? "aborted" : "finished";
        await tx.update(batches).set({ state: done, finishedAt: new Date() }).where(eq(batches.id, batchId));
        if (done === "finished") {
          const ev = await recordStoreEvent(store, tx, {
            actor: "system",
            kind: "batch.finished",
            message: `Batch ${batchId} (${BATCH_KIND_LABELS[b.kind as BatchKind]}) finished: ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled`,
            payload: { batchId, ...c },
          });
          live.push({ type: "event.created", event: ev });
        }
        live.push({ type: "batch.changed", batchId, state: done });
      }
    });
    for (const e of live) this.d.bus.publish(e);
    if (this.dirty.size) this.nudge();
    if (alert) this.send(alert);
  }

  /** Record the alert (event + batch params), pause when `state` says so, and prepare the webhook call. */
  private async raise(
    tx: Tx,
    b: Store["t"]["batches"]["$inferSelect"],
    state: BatchState,
    window: { failed: number; finished: number },
    counts: BatchCounts,
    live: LiveEvent[],
  ): Promise<Alert | null> {
    const store = this.store;
    const { batches } = store.t;
    const label = BATCH_KIND_LABELS[b.kind as BatchKind];
    const message =
      `Batch ${b.id} (${label}): ${window.failed} of ${window.finished} finished jobs failed, above the ${b.failureThreshold}% threshold` +
      (state === "paused" ? `; paused with ${counts.queued} queued` : "");
    const settings = await getBatchSettings(store, tx);
    const hook = settings.webhookUrl;
    if (state === "paused") await tx.update(batches).set({ state: "paused" }).where(eq(batches.id, b.id));
    await updateParams(store, tx, b.id, (p) => ({
      ...p,
      alerted: true,
      alert: { at: Date.now(), message, webhook: { state: hook ? "sending" : "none", attempts: 0, error: null } },
    }));
    const ev = await recordStoreEvent(store, tx, {
      actor: "system",
      kind: state === "paused" ? "batch.paused" : "batch.alert",
      message,
      payload: { batchId: b.id, kind: b.kind, thresholdPct: b.failureThreshold, ...counts },
    });
    this.d.log.warn("batch failure threshold passed", { batchId: b.id, state, failed: window.failed, finished: window.finished });
    live.push({ type: "event.created", event: ev }, { type: "batch.alert", batchId: b.id, state, message }, { type: "batch.changed", batchId: b.id, state });
    if (!hook) return null;
    return { batchId: b.id, url: hook, body: this.payload(b.id, b.kind, state, message, counts, b.failureThreshold, settings.publicUrl) };
  }

  private payload(id: number, kind: string, state: BatchState, message: string, counts: object, thresholdPct: number, publicUrl: string | null) {
    const base = (publicUrl ?? this.opts.baseUrl).replace(/\/+$/, "");
    return { event: state === "paused" ? "batch.paused" : "batch.alert", batch: { id, kind, state, thresholdPct, counts }, message, url: `${base}/batches/${id}` };
  }

  private async resendAlert(batchId: number): Promise<void> {
    const store = this.store;
    const { batches } = store.t;
    const [b] = await store.db.select().from(batches).where(eq(batches.id, batchId)).limit(1);
    const alert = b && paramsOf(b).alert;
    if (!b || !alert) return;
    const counts = await countBatch(store, store.db, batchId);
    const { webhookUrl, publicUrl } = await getBatchSettings(store);
    if (!webhookUrl) return;
    this.send({ batchId, url: webhookUrl, body: this.payload(batchId, b.kind, b.state as BatchState, alert.message, counts, b.failureThreshold, publicUrl) });
  }

  /** Deliver in the background; the outcome is written on the batch (visible in the UI) and logged. Never blocks. */
  private send(alert: Alert): void {
    const store = this.store;
    const { batches } = store.t;
    const p = postWebhook(alert.url, alert.body, this.webhook, () => this.stopping).then(async (out) => {
      if (this.stopping && !out.ok) return; // left as "sending": the next start sends it again
      const ev = await store.transaction(async (tx) => {
        await updateParams(store, tx, alert.batchId, (p) =>
          p.alert ? { ...p, alert: { ...p.alert, webhook: { state: out.ok ? "sent" : "failed", attempts: out.attempts, error: out.error } } } : p,
        );
        if (out.ok) return null;
        return recordStoreEvent(store, tx, {
          actor: "system",
          kind: "batch.webhook_failed",
          message: `Batch ${alert.batchId}: alert webhook failed after ${out.attempts} attempts: ${out.error}`,
          payload: { batchId: alert.batchId, attempts: out.attempts, error: out.error },
        });
      });
      if (ev) {
        this.d.log.warn("batch alert webhook failed", { batchId: alert.batchId, attempts: out.attempts, error: out.error });
        this.d.bus.publish({ type: "event.created", event: ev });
      }
      const [row] = await store.db.select({ s: batches.state }).from(batches).where(eq(batches.id, alert.batchId)).limit(1);
      const state = row?.s as BatchState | undefined;
      if (state) this.d.bus.publish({ type: "batch.changed", batchId: alert.batchId, state });
    });
    void this.track(p);
  }
}
