import { eq, inArray } from "drizzle-orm";
import { claimSteps, renewSteps } from "../db/pg/leases";
import type { PgDb } from "../db/pg/client";
import type { Store } from "../db/store";
import type { StepRow } from "./orchestrator-queries";

export interface ClaimedStep {
  step: StepRow;
  machineId: number;
  batchId: number | null;
}

/**
 * PostgreSQL: the server steps one process takes and holds (orchestrator.ts). `claim` takes ready server steps, and
 * running ones whose holder's lease lapsed (`claimSteps`, FOR UPDATE SKIP LOCKED), and hands each to `run`; one
 * claim at a time, a request while one runs makes it run once more after. `renew` extends the leases of the steps
 * still held; a lease lost (taken over) is no longer this process's.
 */
export class ServerStepClaims {
  /** Step id → attempt, while the step runs here. */
  readonly held = new Map<number, number>();
  private claiming: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly store: Store,
    private readonly owner: string,
    private readonly leaseMs: number,
    private readonly run: (claimed: ClaimedStep) => void,
  ) {}

  /** Starts a claim and returns it, or null when one is already running (it will run once more). */
  claim(stopping: () => boolean): Promise<void> | null {
    if (this.claiming) {
      this.again = true;
      return null;
    }
    const p = this.claimLoop(stopping).finally(() => (this.claiming = null));
    this.claiming = p;
    return p;
  }

  private async claimLoop(stopping: () => boolean): Promise<void> {
    do {
      this.again = false;
      const leases = await claimSteps(this.store.db as unknown as PgDb, this.owner, { limit: 500, leaseMs: this.leaseMs });
      if (!leases.length) continue;
      const { t } = this.store;
      const rows = await this.store.db
        .select({ step: t.steps, machineId: t.jobs.machineId, batchId: t.jobs.batchId })
        .from(t.steps)
        .innerJoin(t.jobs, eq(t.jobs.id, t.steps.jobId))
        .where(inArray(t.steps.id, leases.map((l) => l.id)));
      for (const r of rows) {
        if (r.step.state !== "running" || r.step.leaseOwner !== this.owner) continue;
        this.held.set(r.step.id, r.step.attempt);
        this.run(r);
      }
    } while (this.again && !stopping());
  }

  async renew(stopping: () => boolean): Promise<void> {
    if (!this.held.size || stopping()) return;
    const ids = [...this.held.keys()];
    const kept = new Set(await renewSteps(this.store.db as unknown as PgDb, this.owner, ids, this.leaseMs));
    for (const id of ids) if (!kept.has(id)) this.held.delete(id);
  }
}
