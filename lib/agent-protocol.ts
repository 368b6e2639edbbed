/** The agent ⇄ server protocol (DESIGN §7), shared by server/agent-api and agent/. Isomorphic. */
import { z } from "zod";

export const AGENT_API_PREFIX = "/api/agent/v1";

/** The per-boot lookup secret: rackhand.nonce=<64 hex digits> on the agent's kernel command line. */
export const AGENT_NONCE_RE = /^[0-9a-f]{64}$/;

export const lookupRequest = z.object({
  macs: z.array(z.string().max(32)).min(1, "at least one MAC").max(64),
  /** Required by the server (401 without it); optional here so its absence gets a clear 401 rather than a 400. */
  nonce: z.string().max(64, "must be the 64 hex digits of rackhand.nonce").regex(AGENT_NONCE_RE, "must be the 64 hex digits of rackhand.nonce").optional(),
  inventory: z.record(z.string(), z.unknown()).optional(),
});
export type LookupRequest = z.infer<typeof lookupRequest>;
export interface LookupResponse {
  machineId: number;
  machineName: string;
  jobId: number;
  /** Bearer token for every later call of this job; shown once, stored hashed. */
  token: string;
  /** The job's next log sequence number (highest stored + 1): a restarted agent continues from it. */
  nextSeq: number;
}

export const heartbeatRequest = z.object({
  /** Long-poll: wait up to this many seconds for work. */
  waitS: z.number().min(0).max(30).default(20),
  /**
   * The ids of the steps this agent is running or still reporting. With it, the server hands out again every step of
   * the job leased to the agent and running that is not in the list: a claim whose answer never arrived (the process
   * that claimed it died after its commit, or the connection was cut). Without it (an older agent), nothing is
   * handed out twice.
   */
  running: z.array(z.number().int().positive().max(2 ** 31 - 1)).max(64).optional(),
});
export interface AgentStep {
  id: number;
  name: string;
  attempt: number;
  timeoutS: number;
  params: Record<string, unknown>;
}
export interface HeartbeatResponse {
  /** true when the job is over (finished or cancelled): stop working on it. */
  done: boolean;
  jobState: string;
  steps: AgentStep[];
}

export const logLine = z.object({
  seq: z.number().int().min(0),
  ts: z.number().int().min(0),
  // phase: "phase: <name>" lines of agent installs, shown as the installer progress strip (lib/installer-phases.ts).
  stream: z.enum(["stdout", "stderr", "agent", "phase"]).default("stdout"),
  text: z.string().max(8192),
});
export const logsRequest = z.object({ lines: z.array(logLine).min(1).max(2000) });
export type AgentLogLine = z.infer<typeof logLine>;

export const resultRequest = z.union([
  z.object({ attempt: z.number().int().min(1), ok: z.literal(true), result: z.record(z.string(), z.unknown()).optional() }),
  z.object({
    attempt: z.number().int().min(1),
    ok: z.literal(false),
    error: z.object({ transient: z.boolean(), message: z.string().min(1).max(4000) }),
  }),
]);
export type ResultRequest = z.infer<typeof resultRequest>;
