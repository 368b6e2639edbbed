"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState } from "react";
import { ACTIVE_JOB_STATES, type JobDto, type JobState, type StepDto, type StepState } from "@/lib/jobs";
import { dateTime, relativeTime } from "@/lib/format";
import { LogPane } from "./log-pane";
import { NEEDS_OPERATOR, useSession } from "./session";
import { errorInfo, useTRPC } from "./trpc";
import { Dialog, ErrorBanner } from "./ui";

const BADGE: Record<JobState | StepState, string> = {
  queued: "bg-slate-100 text-slate-700 ring-slate-300",
  pending: "bg-slate-50 text-slate-500 ring-slate-200",
  ready: "bg-sky-50 text-sky-700 ring-sky-200",
  running: "bg-amber-50 text-amber-800 ring-amber-300",
  succeeded: "bg-emerald-50 text-emerald-700 ring-emerald-200",
  failed: "bg-red-50 text-red-700 ring-red-200",
  cancelled: "bg-slate-100 text-slate-500 ring-slate-300",
};

export function Badge({ state }: { state: JobState | StepState }) {
  return <span className={`inline-flex rounded px-1.5 py-0.5 text-xs font-medium ring-1 ring-inset ${BADGE[state]}`}>{state}</span>;
}

/** "850 ms", "12 s", "3m 05s", "1h 02m". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const span = (start: number | null, end: number | null, now: number) => (start == null ? "—" : duration((end ?? now) - start));
const isActive = (j: Pick<JobDto, "state">) => ACTIVE_JOB_STATES.includes(j.state);

/** A clock for running durations: ticks each second only while something runs. */
function useNow(running: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);
  // eslint-disable-next-line react-hooks/purity -- a stopped clock reads the wall time at each render ("started 5 min ago")
  return running ? now : Date.now();
}

function StepRow({ s, now, firstOfGroup, groupIndex }: { s: StepDto; now: number; firstOfGroup: boolean; groupIndex: number }) {
  const retryAt = s.state === "pending" && s.nextAttemptAt != null ? s.nextAttemptAt : null;
  return (
    <tr className={`align-top ${firstOfGroup ? "border-t border-slate-100" : ""}`} data-step-state={s.state}>
      <td className="py-1 pr-2 text-xs text-slate-500">{firstOfGroup ? groupIndex + 1 : ""}</td>
      <th scope="row" className="py-1 pr-2 text-left font-mono text-xs font-normal">
        {s.name}
      </th>
      <td className="py-1 pr-2 text-xs text-slate-500">{s.runner}</td>
      <td className="py-1 pr-2">
        <Badge state={s.state} />
      </td>
      <td className="py-1 pr-2 text-xs tabular-nums text-slate-600">
        {s.attempt}/{s.maxAttempts}
      </td>
      <td className="py-1 pr-2 text-xs tabular-nums text-slate-600" data-testid="step-elapsed" title={`Time limit ${duration(s.timeoutS * 1000)} per attempt`}>
        {s.state === "running" || s.finishedAt != null ? span(s.startedAt, s.finishedAt, now) : "—"}
        <span className="text-slate-500"> / {duration(s.timeoutS * 1000)}</span>
      </td>
      <td className="py-1 text-xs">
        {retryAt != null && <span className="mr-2 text-amber-700">retry at {dateTime(retryAt).slice(11, 19)}</span>}
        {s.error && <span className={s.state === "failed" ? "text-red-700" : "text-amber-700"}>{s.error}</span>}
      </td>
    </tr>
  );
}

/** What a running wait step is waiting for, and what to check when it does not come. */
const WAIT_HINTS: Record<string, { what: string; check: string }> = {
  wait_agent: {
    what: "Waiting for the agent",
    check:
      "No agent has contacted Rackhand for this machine; is its boot device PXE (network first), and does its DHCP reach Rackhand (netboot mode, DHCP proxy or relay, firewall)? The machine's console shows how far its boot got.",
  },
  wait_install: {
    what: "Waiting for the installer to finish",
    check: "The installer has not reported success yet; its log lines and the console show where it is.",
  },
};

function WaitingHint({ job, now }: { job: JobDto; now: number }) {
  const s = job.steps.find((x) => x.state === "running" && x.name in WAIT_HINTS);
  if (!s || s.startedAt == null) return null;
  const hint = WAIT_HINTS[s.name]!;
  const waited = now - s.startedAt;
  const limit = s.timeoutS * 1000;
  return (
    <div role="status" data-testid="waiting-hint" className="mt-2 rounded-md border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-950">
      <b>
        {hint.what}: {duration(waited)} of {duration(limit)}
      </b>{" "}
      (the step fails {waited >= limit ? "now" : `in ${duration(limit - waited)}`}). {hint.check}
    </div>
  );
}

function JobCard({
  job,
  now,
  selected,
  expanded,
  onSelect,
  onToggle,
  onCancel,
  canCancel,
}: {
  job: JobDto;
  now: number;
  selected: boolean;
  expanded: boolean;
  onSelect: () => void;
  onToggle: () => void;
  onCancel: () => void;
  canCancel: boolean;
}) {
  const groups = [...new Set(job.steps.map((s) => s.group))];
  const done = job.steps.filter((s) => s.state === "succeeded").length;
  return (
    <li className={`rounded-md border p-3 ${selected ? "border-blue-300 bg-blue-50/30" : "border-slate-200"}`} aria-label={`Job ${job.id}`}>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <button type="button" className="text-slate-500 hover:text-slate-800" aria-expanded={expanded} aria-label={`Steps of job ${job.id}`} onClick={onToggle}>
          {expanded ? "▾" : "▸"}
        </button>
        <span className="font-semibold">Job #{job.id}</span>
        <span className="font-mono text-xs">{job.kind}</span>
        <Badge state={job.state} />
        <span className="text-xs text-slate-500">
          {done}/{job.steps.length} steps · {job.createdBy ?? "system"} · {job.startedAt ? `started ${relativeTime(job.startedAt, now)}` : "not started"} ·{" "}
          {span(job.startedAt, job.finishedAt, now)}
        </span>
        <div className="ml-auto flex gap-2">
          <Link className="btn btn-sm" href={`/jobs/${job.id}`} title="Steps, log lines, events and console on one time axis">
            Timeline
          </Link>
          <a
            className="btn btn-sm"
            href={`/api/jobs/${job.id}/record`}
            download
            title="The whole record (steps, agent and installer lines, events, console transcript, on one time axis) as JSON with a plain-text rendering inside, for a support ticket"
          >
            Download record
          </a>
          <a className="btn btn-sm" href={`/api/jobs/${job.id}/record?format=txt`} download title="The same record as plain text">
            .txt
          </a>
          <button type="button" className="btn btn-sm" aria-pressed={selected} onClick={onSelect}>
            {selected ? "Log shown" : "Show log"}
          </button>
          {isActive(job) && (
            <button type="button" className="btn btn-sm btn-danger" disabled={!canCancel} title={canCancel ? undefined : NEEDS_OPERATOR} onClick={onCancel}>
              Cancel job
            </button>
          )}
        </div>
      </div>
      {job.error && <p className="mt-1 text-sm text-red-700">{job.error}</p>}
      <WaitingHint job={job} now={now} />
      {expanded && (
        <table className="mt-2 w-full text-sm" aria-label={`Steps of job ${job.id}`}>
          <thead className="sr-only">
            <tr>
              <th>Group</th>
              <th>Step</th>
              <th>Runner</th>
              <th>State</th>
              <th>Attempt</th>
              <th>Elapsed / time limit</th>
              <th>Notes</th>
            </tr>
          </thead>
          <tbody>
            {groups.flatMap((g, gi) =>
              job.steps.filter((s) => s.group === g).map((s, i) => <StepRow key={s.id} s={s} now={now} firstOfGroup={i === 0} groupIndex={gi} />),
            )}
          </tbody>
        </table>
      )}
    </li>
  );
}

/**
 * The machine page's Jobs section: the timeline of jobs (newest first) with their step groups, and the install
 * log of the selected job (by default the running or latest one). Live through job.changed / step.changed
 * (components/live.tsx invalidates jobs.forMachine) and the job's socket room.
 */
export function JobsSection({ machineId, machineName, simulated = false }: { machineId: number; machineName: string; simulated?: boolean }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const { data: jobs, error } = useQuery(trpc.jobs.forMachine.queryOptions({ machineId, limit: 20 }));
  const [selectedId, setSelectedId] = useState<number | null>(null);
  const [toggled, setToggled] = useState<Record<number, boolean>>({});
  const [confirm, setConfirm] = useState<JobDto | null>(null);
  const cancel = useMutation(
    trpc.jobs.cancel.mutationOptions({
      onSuccess: () => {
        setConfirm(null);
        void qc.invalidateQueries({ queryKey: trpc.jobs.forMachine.pathKey() });
        void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
      },
    }),
  );
  const list = jobs ?? [];
  const now = useNow(list.some(isActive));
  const selected = list.find((j) => j.id === selectedId) ?? list.find(isActive) ?? list[0] ?? null;

  return (
    <section className="card mb-4 p-4" aria-label="Jobs">
      <h2 className="mb-2 font-semibold">Jobs</h2>
      {simulated && (
        <p className="mb-2 text-sm text-violet-800" data-testid="simulated-jobs">
          This machine is in the demo lab: its agent steps are run by a simulated agent; nothing is downloaded or written to a disk.
        </p>
      )}
      <ErrorBanner message={error ? errorInfo(error).message : null} />
      {jobs && list.length === 0 && <p className="text-sm text-slate-500">No jobs yet. Inspect, deploy or clean the machine to start one.</p>}
      {list.length > 0 && (
        <div className="grid gap-4 xl:grid-cols-[minmax(0,2fr)_minmax(0,3fr)]">
          <ol className="max-h-[32rem] min-w-0 space-y-2 overflow-auto" aria-label="Job timeline">
            {list.map((j, i) => (
              <JobCard
                key={j.id}
                job={j}
                now={now}
                selected={selected?.id === j.id}
                expanded={toggled[j.id] ?? (i === 0 || isActive(j))}
                onSelect={() => setSelectedId(j.id)}
                onToggle={() => setToggled((t) => ({ ...t, [j.id]: !(t[j.id] ?? (i === 0 || isActive(j))) }))}
                onCancel={() => setConfirm(j)}
                canCancel={can("operator")}
              />
            ))}
          </ol>
          {selected && <LogPane key={selected.id} job={selected} machineName={machineName} />}
        </div>
      )}
      <Dialog open={!!confirm} onClose={() => setConfirm(null)} title={confirm ? `Cancel job #${confirm.id}?` : ""}>
        {confirm && (
          <div className="space-y-3">
            <p className="text-sm">
              Steps not yet finished are cancelled and {machineName} moves to a failed state. Nothing is powered off; an agent on the machine stops at
              its next heartbeat.
            </p>
            <ErrorBanner message={cancel.error ? errorInfo(cancel.error).message : null} />
            <div className="flex justify-end gap-2">
              <button className="btn" onClick={() => setConfirm(null)}>
                Keep running
              </button>
              <button className="btn btn-danger" disabled={cancel.isPending} onClick={() => cancel.mutate({ jobId: confirm.id })}>
                Cancel job
              </button>
            </div>
          </div>
        )}
      </Dialog>
    </section>
  );
}
