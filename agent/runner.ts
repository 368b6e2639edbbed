import { z } from "zod";
import { ApiClient, ApiError, describe, heartbeatResponse, lookupResponse, retryDelayMs, sleep, type AgentStepMsg } from "./client";
import type { AgentConfig } from "./config";
import { classifyFailure, permanent } from "./errors";
import { LogShipper } from "./log-shipper";
import type { StepContext } from "./steps/context";
import { STEP_HANDLERS } from "./steps/index";
import { collectInventory } from "./steps/inventory";

type Lookup = z.infer<typeof lookupResponse>;
type Outcome = { ok: true; result: Record<string, unknown> } | { ok: false; error: { transient: boolean; message: string } };
const okAnswer = z.object({ ok: z.literal(true) });

/**
 * The agent's loop: look up this machine (until the server has a job for it), then heartbeat (long-poll) and run
 * every step handed out, each reporting its logs and then its result for the attempt it was given. A job ends
 * when the heartbeat says done (or its token is revoked); then back to lookup, or exit with --once.
 */
export class Agent {
  private readonly client: ApiClient;
  private inventory: Record<string, unknown> | undefined;
  private job: Lookup | null = null;
  private relogging: Promise<boolean> | null = null;
  /** A lookup that answered with a newer job while the old one was being finished. */
  private nextJob: Lookup | null = null;

  constructor(
    private readonly config: AgentConfig,
    private readonly note: (text: string) => void = (t) => process.stderr.write(`[agent] ${t}\n`),
  ) {
    this.client = new ApiClient(config.api, config.retryMaxMs, note);
  }

  async run(): Promise<void> {
    do {
      const job = this.nextJob ?? (await this.lookup());
      this.nextJob = null;
      await this.runJob(job);
    } while (!this.config.once);
  }

  /** POST /lookup until the server has a running job for one of our MACs. */
  private async lookup(): Promise<Lookup> {
    this.inventory ??= await collectInventory().catch((err) => (this.note(`inventory for lookup failed: ${describe(err)}`), undefined));
    for (let failures = 0; ; failures++) {
      try {
        this.client.token = null;
        const job = await this.client.post("/lookup", { macs: this.config.macs, nonce: this.config.nonce ?? undefined, inventory: this.inventory }, lookupResponse, 30_000);
        this.note(`job ${job.jobId} for ${job.machineName} (machine ${job.machineId}), log seq from ${job.nextSeq}`);
        return job;
      } catch (err) {
        // 401: our nonce is not (or no longer) the one of this machine's boot entry, e.g. a new job began while this
        // boot's agent was still up. Keep asking: the job's power cycle boots us again with the current one.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 401 && err.status !== 404 && err.status !== 429) throw err;
        const wait = retryDelayMs(failures, this.config.retryMaxMs);
        if (failures % 20 === 0) this.note(`lookup: ${describe(err)}; asking again in ${wait} ms`);
        await sleep(wait);
      }
    }
  }

  /**
   * The server refused our token: another lookup gets a fresh one if our job still runs.
   * Resolves false when the job is over. Concurrent callers share one lookup.
   */
  private relogin(): Promise<boolean> {
    this.relogging ??= (async () => {
      const current = this.job;
      try {
        const again = await this.lookupOnceRetrying();
        if (again && current && again.jobId === current.jobId) {
          this.job = again;
          this.client.token = again.token;
          this.shipper?.resumeFrom(again.nextSeq);
          return true;
        }
        if (again) this.nextJob = again;
        if (current) this.client.token = current.token; // keep failing with 401 rather than talk for another job
        return false;
      } finally {
        this.relogging = null;
      }
    })();
    return this.relogging;
  }

  /**
   * One lookup, retried only on network errors and 5xx; null when the server has no job for us (404), or refuses our
   * nonce (401): the boot it belongs to is over, so is its job. A call refused with 401 right after the job's last
   * result (the job closed and revoked the token meanwhile) ends the job here, not the agent.
   */
  private async lookupOnceRetrying(): Promise<Lookup | null> {
    const saved = this.client.token;
    this.client.token = null;
    try {
      return await this.client.call("/lookup", { macs: this.config.macs, nonce: this.config.nonce ?? undefined, inventory: this.inventory }, lookupResponse);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 401)) return null;
      throw err;
    } finally {
      this.client.token = saved;
    }
  }

  private shipper: LogShipper | null = null;

  private async runJob(job: Lookup): Promise<void> {
    this.job = job;
    this.client.token = job.token;
    const shipper = new LogShipper(this.client, job.nextSeq, { onUnauthorized: () => this.relogin(), note: this.note });
    this.shipper = shipper;
    const running = new Map<number, { abort: AbortController; done: Promise<void> }>();
    for (let failures = 0; ; ) {
      let hb: z.infer<typeof heartbeatResponse>;
      try {
        // `running`: what this agent runs or still reports, so a step whose claim's answer was lost is handed out again.
        hb = await this.client.call("/heartbeat", { waitS: this.config.waitS, running: [...running.keys()] }, heartbeatResponse, (this.config.waitS + 30) * 1000);
        failures = 0;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          if (await this.relogin()) continue;
          this.note(`job ${job.jobId} is over (token revoked)`);
          break;
        }
        this.note(`heartbeat: ${describe(err)}`);
        await sleep(retryDelayMs(failures++, this.config.retryMaxMs));
        continue;
      }
      if (hb.done) {
        this.note(`job ${job.jobId} is ${hb.jobState}`);
        break;
      }
      for (const step of hb.steps) {
        if (running.has(step.id)) continue;
        const abort = new AbortController();
        const done = this.runStep(step, shipper, abort).finally(() => running.delete(step.id));
        running.set(step.id, { abort, done });
      }
    }
    // Cancelled or finished: stop what still runs (its report will be refused), ship what can be shipped.
    for (const r of running.values()) r.abort.abort();
    await Promise.allSettled([...running.values()].map((r) => r.done));
    await shipper.flush();
    shipper.close();
    this.shipper = null;
  }

  private async runStep(step: AgentStepMsg, shipper: LogShipper, abort: AbortController): Promise<void> {
    const log = (text: string, stream: "stdout" | "stderr" | "agent" | "phase" = "agent") => {
      shipper.write(step.id, text, stream);
      process.stderr.write(`[${step.name}] ${text}\n`);
    };
    const timer = setTimeout(() => abort.abort(), step.timeoutS * 1000);
    const after: (() => Promise<void>)[] = [];
    const started = Date.now();
    log(`${step.name}: attempt ${step.attempt} started`);
    let outcome: Outcome;
    try {
      const handler = STEP_HANDLERS[step.name as keyof typeof STEP_HANDLERS];
      if (!handler) throw permanent(`this agent cannot run step ${step.name}`);
      const ctx: StepContext = {
        stepId: step.id,
        attempt: step.attempt,
        params: step.params,
        log,
        signal: abort.signal,
        config: this.config,
        afterReport: (fn) => void after.push(fn),
      };
      outcome = { ok: true, result: await handler(ctx) };
      log(`${step.name}: succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      const error = classifyFailure(err);
      outcome = { ok: false, error };
      log(`${step.name}: failed (${error.transient ? "transient" : "permanent"}): ${error.message}`, "stderr");
    } finally {
      clearTimeout(timer);
    }
    // Logs first: once the result is in, the job may end and its token stop working.
    await shipper.flush();
    if (await this.report(step, outcome)) for (const f of after) await f();
  }

  /** Report a step's outcome for its attempt. Returns whether the server took it. */
  private async report(step: AgentStepMsg, outcome: Outcome): Promise<boolean> {
    for (;;) {
      try {
        await this.client.call(`/steps/${step.id}/result`, { attempt: step.attempt, ...outcome }, okAnswer);
        return true;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401 && (await this.relogin())) continue;
        if (err instanceof ApiError && err.status === 400 && outcome.ok) {
          // The result itself was refused (too large?): the step cannot be counted as done.
          outcome = { ok: false, error: { transient: false, message: `result refused by the server: ${err.message}` } };
          continue;
        }
        this.note(`result of step ${step.id} attempt ${step.attempt} not taken: ${describe(err)}`);
        return false;
      }
    }
  }
}
