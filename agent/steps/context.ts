import type { AgentConfig } from "../config";
import type { LogFn } from "../exec";

/** What a step handler gets: its params (from the job kind), a log, an abort signal, the agent's config. */
export interface StepContext {
  stepId: number;
  attempt: number;
  params: Record<string, unknown>;
  log: LogFn;
  /** Aborted when the step's timeout passes or the job is cancelled. */
  signal: AbortSignal;
  config: AgentConfig;
  /** Run after the result was reported (reboot: the server must hear the result before the machine goes). */
  afterReport: (fn: () => Promise<void>) => void;
}

export type StepHandler = (ctx: StepContext) => Promise<Record<string, unknown>>;
