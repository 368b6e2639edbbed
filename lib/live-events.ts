/** Events pushed to browsers over socket.io. A closed union: the UI switches on `type`. */
import type { MachineState } from "./lifecycle";
import type { BatchState } from "./batches";
import type { JobState, LogLineDto, StepState } from "./jobs";
import type { PowerState } from "./schemas";

export type LiveEvent =
  | {
      type: "machine.changed";
      machineId: number;
      name: string;
      state: MachineState;
      powerState: PowerState;
      maintenance: boolean;
      rackId: number | null;
    }
  | { type: "machine.deleted"; machineId: number; rackId: number | null }
  | { type: "machines.bulk"; count: number }
  | { type: "rack.changed"; rackId: number }
  | { type: "rack.deleted"; rackId: number }
  | { type: "event.created"; event: EventDto }
  | { type: "job.changed"; jobId: number; machineId: number; batchId: number | null; state: JobState }
  | { type: "log.lines"; jobId: number; machineId: number; lines: LogLineDto[] }
  /**
   * A step started, finished, failed or was scheduled for a retry (the job timeline and the batch page follow it).
   * Sent to the machine's, the job's and (when the job is in one) the batch's room, never to the fleet.
   */
  | { type: "step.changed"; jobId: number; machineId: number; batchId: number | null; stepId: number; state: StepState }
  | { type: "os-profile.changed"; profileId: number }
  | { type: "netboot.changed" }
  /** A power-sync sweep ended (the Settings page's power sync panel follows it). */
  | { type: "power.sweep"; machines: number; ok: number; failed: number; changed: number; durationMs: number; at: string }
  /** A batch was created, resumed, paused, aborted or finished (progress comes with its jobs' job.changed). */
  | { type: "batch.changed"; batchId: number; state: BatchState }
  /** A batch passed its failure threshold: the UI shows the alert banner. */
  | { type: "batch.alert"; batchId: number; state: BatchState; message: string }
  /**
   * Server-internal, never sent to browsers: a user's sessions or role changed (logout, disabled, new password,
   * new role). The socket gateway re-checks that user's open sockets and drops or downgrades them.
   */
  | { type: "user.access.changed"; userId: number }
  /**
   * Server-internal, never sent to browsers (PostgreSQL, several processes): a follower asks the netboot leader for a
   * machine's boot entries (the request itself is in the database: server/netboot/tree-requests.ts) ...
   */
  | { type: "netboot.apply"; network: string; machineId: number }
  /** ... and the leader wrote the tree for the requests up to `applied` (`ok` false: it failed; the waiters read why). */
  | { type: "netboot.applied"; network: string; applied: number; ok: boolean };

export interface EventDto {
  id: number;
  ts: number;
  actor: string;
  machineId: number | null;
  machineName?: string | null;
  kind: string;
  message: string;
  payload: Record<string, unknown> | null;
}

/** socket.io room names (DESIGN §9). */
export const rooms = {
  fleet: "fleet",
  machine: (id: number) => `machine:${id}`,
  job: (id: number) => `job:${id}`,
  batch: (id: number) => `batch:${id}`,
  console: (id: number) => `console:${id}`,
};
