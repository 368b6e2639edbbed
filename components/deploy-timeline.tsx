"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { ACTIVE_JOB_STATES, type JobDto } from "@/lib/jobs";
import { axisTime, countBySource, firstIndexOfStep, parseSources, SOURCE_LABELS, sourcesParam, TIMELINE_SOURCES, type TimelineEntry, type TimelineSource } from "@/lib/job-timeline";
import type { LiveEvent } from "@/lib/live-events";
import { plural } from "@/lib/format";
import type { JobRecord } from "@/server/orchestrator/job-record";
import { Badge, duration } from "./job-timeline";
import { useJobLog, useLive } from "./live";
import { ErrorBanner, PageHeader } from "./ui";

/** The job page reads the record without its text rendering and raw transcript (GET …/record?format=view). */
type RecordView = Omit<JobRecord, "text">;

async function fetchRecord(jobId: number): Promise<RecordView> {
  const res = await fetch(`/api/jobs/${jobId}/record?format=view`, { cache: "no-store", credentials: "same-origin" });
  if (!res.ok) throw new Error(res.status === 404 ? `Job ${jobId} does not exist` : `Could not load job ${jobId} (HTTP ${res.status}): ${(await res.text()).slice(0, 200)}`);
  return (await res.json()) as RecordView;
}

/** Row height of the axis in px: fixed, so only the rows in view are rendered (20,000 lines stay cheap). */
const ROW = 20;
const VIEW_ROWS = 28;
const OVERSCAN = 20;
/** A running job's record is fetched again at most this often, however many live events come. */
const MIN_REFETCH_MS = 1000;

/**
 * The axis is dark in the light theme and light in the dark one (app/theme-dark.css turns the scales round), so its
 * colours come from the 200/300 end of each scale: light on near-black, dark on near-white, both above 4.5:1.
 */
const SOURCE_STYLE: Record<TimelineSource, string> = {
  step: "text-amber-200",
  agent: "text-sky-200",
  installer: "text-emerald-200",
  server: "text-slate-300",
  event: "text-violet-200",
  console: "text-pink-200",
};

/**
 * Refetch while the job runs: on its log lines and step changes (its socket room) and its state changes (the fleet
 * room), coalesced to one fetch per MIN_REFETCH_MS, plus every 5 s (console lines have no event of their own).
 */
function useLiveRecord(jobId: number, active: boolean, refetch: () => unknown) {
  const { socket } = useLive();
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const last = useRef(0);
  const poke = useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(
      () => {
        timer.current = null;
        last.current = Date.now();
        void refetch();
      },
      Math.max(0, last.current + MIN_REFETCH_MS - Date.now()),
    );
  }, [refetch]);
  useEffect(() => () => void (timer.current && clearTimeout(timer.current)), []);
  const { connected } = useJobLog(active ? jobId : null, { onLines: poke, onJoined: poke });
  useEffect(() => {
    if (!socket) return;
    const onLive = (e: LiveEvent) => {
      if ((e.type === "step.changed" || e.type === "job.changed") && e.jobId === jobId) poke();
    };
    socket.on("live", onLive);
    return () => void socket.off("live", onLive);
  }, [socket, jobId, poke]);
  return connected;
}

const AxisRow = memo(function AxisRow({
  e,
  index,
  selected,
  onStep,
}: {
  e: TimelineEntry;
  index: number;
  selected: boolean;
  onStep: (stepId: number) => void;
}) {
  return (
    <div
      className={`flex h-5 gap-2 whitespace-pre px-2 ${selected ? "bg-slate-800" : "hover:bg-slate-900"}`}
      data-index={index}
      data-source={e.source}
      data-step-id={e.stepId ?? ""}
    >
      <span className="shrink-0 select-none text-slate-300">{axisTime(e.ts)}</span>
      <span className={`w-16 shrink-0 select-none ${SOURCE_STYLE[e.source]}`}>{e.source}</span>
      {e.stepId != null ? (
        <button type="button" className="w-32 shrink-0 truncate text-left text-blue-200 underline-offset-2 hover:underline" title={`Go to step ${e.stepName}`} onClick={() => onStep(e.stepId!)}>
          {e.stepName}
        </button>
      ) : (
        <span className="w-32 shrink-0 text-slate-300">—</span>
      )}
      <span className={e.text.startsWith("[stderr]") ? "text-red-200" : "text-slate-100"}>{e.text}</span>
    </div>
  );
});

/**
 * The time axis, virtualised: a spacer as tall as every row, with only the rows in view (plus some) rendered.
 * Follows the end while scrolled to it; `jump` scrolls to an entry.
 */
function Axis({
  entries,
  selectedStep,
  onStep,
  jump,
  jobId,
  initialIndex,
}: {
  entries: TimelineEntry[];
  selectedStep: number | null;
  onStep: (stepId: number) => void;
  jump: { index: number; n: number } | null;
  jobId: number;
  /** Where the first view opens (the URL's step): an entry index, or -1 for the end. */
  initialIndex: number;
}) {
  const el = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const atEnd = useRef(true);
  const opened = useRef(false);
  // Scrolling fires onScroll, which renders the rows now in view.
  useLayoutEffect(() => {
    const d = el.current;
    if (!d || opened.current || entries.length === 0) return;
    opened.current = true;
    if (initialIndex < 0) return;
    atEnd.current = false;
    d.scrollTop = Math.max(0, initialIndex * ROW - 2 * ROW);
  }, [entries.length, initialIndex]);
  useLayoutEffect(() => {
    const d = el.current;
    if (d && atEnd.current) d.scrollTop = d.scrollHeight;
  }, [entries.length]);
  useLayoutEffect(() => {
    const d = el.current;
    if (!d || !jump) return;
    atEnd.current = false;
    d.scrollTop = Math.max(0, jump.index * ROW - 2 * ROW);
  }, [jump]);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(entries.length, Math.ceil(top / ROW) + VIEW_ROWS + OVERSCAN);
  return (
    <div
      ref={el}
      role="log"
      aria-label={`Timeline of job ${jobId}`}
      aria-live="off"
      tabIndex={0}
      className="overflow-auto rounded-md bg-slate-950 py-1 font-mono text-xs leading-5"
      style={{ height: VIEW_ROWS * ROW + 8 }}
      onScroll={(e) => {
        const d = e.currentTarget;
        atEnd.current = d.scrollTop + d.clientHeight >= d.scrollHeight - ROW;
        setTop(d.scrollTop);
      }}
    >
      {entries.length === 0 ? (
        <p className="px-2 text-slate-300">No entries for the chosen sources.</p>
      ) : (
        <div style={{ height: entries.length * ROW, position: "relative" }}>
          <div style={{ transform: `translateY(${first * ROW}px)` }}>
            {entries.slice(first, last).map((e, i) => (
              <AxisRow key={first + i} e={e} index={first + i} selected={selectedStep != null && e.stepId === selectedStep} onStep={onStep} />
            ))}
          </div>
        </div>
      )}
    </div>
  );
}

function StepList({
  steps,
  counts,
  selected,
  onSelect,
  now,
}: {
  steps: JobDto["steps"];
  counts: Map<number, number>;
  selected: number | null;
  onSelect: (stepId: number) => void;
  now: number;
}) {
  return (
    <nav aria-label="Steps" className="min-w-0">
      <h2 className="mb-1 text-sm font-semibold">Steps</h2>
      <ol className="space-y-1 text-sm">
        {steps.map((s) => (
          <li key={s.id}>
            <button
              type="button"
              id={`step-${s.id}`}
              aria-current={selected === s.id ? "step" : undefined}
              className={`flex w-full flex-wrap items-center gap-x-2 rounded-md border px-2 py-1 text-left ${selected === s.id ? "border-blue-400 bg-blue-50" : "border-slate-200 hover:bg-slate-50"}`}
              onClick={() => onSelect(s.id)}
            >
              <span className="font-mono text-xs">{s.name}</span>
              <Badge state={s.state} />
              <span className="ml-auto text-xs tabular-nums text-slate-600">
                {s.startedAt != null ? duration((s.finishedAt ?? now) - s.startedAt) : "—"} / {duration(s.timeoutS * 1000)} · {plural(counts.get(s.id) ?? 0, "entry", "entries")}
              </span>
            </button>
          </li>
        ))}
      </ol>
    </nav>
  );
}

/**
 * A job's deploy timeline (the job page): steps, agent, installer and server log lines, events and console lines
 * on one time axis, from GET /api/jobs/<id>/record. A step jumps to its first entry; an entry's step name jumps to
 * the step. The source filter and the chosen step are kept in the URL (?sources=agent,console&step=12).
 */
export function DeployTimeline({ jobId }: { jobId: number }) {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const { data, error, refetch, dataUpdatedAt } = useQuery({
    queryKey: ["job-record", jobId],
    queryFn: () => fetchRecord(jobId),
    refetchInterval: (q) => (q.state.data && ACTIVE_JOB_STATES.includes(q.state.data.job.state) ? 5000 : false),
  });
  const active = !!data && ACTIVE_JOB_STATES.includes(data.job.state);
  const connected = useLiveRecord(jobId, active, refetch);
  const shown = useMemo(() => parseSources(params.get("sources")), [params]);
  const stepParam = Number(params.get("step"));
  const selectedStep = Number.isInteger(stepParam) && stepParam > 0 ? stepParam : null;
  const timeline = useMemo(() => data?.timeline ?? [], [data]);
  const entries = useMemo(() => timeline.filter((e) => shown.has(e.source)), [timeline, shown]);
  const bySource = useMemo(() => countBySource(timeline), [timeline]);
  const byStep = useMemo(() => {
    const m = new Map<number, number>();
    for (const e of entries) if (e.stepId != null) m.set(e.stepId, (m.get(e.stepId) ?? 0) + 1);
    return m;
  }, [entries]);
  const [jump, setJump] = useState<{ index: number; n: number } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const setParams = useCallback(
    (patch: { sources?: string | null; step?: number | null }) => {
      const sp = new URLSearchParams(params.toString());
      for (const [k, v] of Object.entries(patch)) {
        if (v === null || v === undefined) sp.delete(k);
        else sp.set(k, String(v));
      }
      const qs = sp.toString();
      router.replace(qs ? `${pathname}?${qs}` : pathname, { scroll: false });
    },
    [params, router, pathname],
  );

  /** Step → its lines: select it and scroll the axis to its first shown entry. */
  const goToLines = (stepId: number) => {
    setParams({ step: stepId });
    const i = firstIndexOfStep(entries, stepId);
    const name = data?.steps.find((s) => s.id === stepId)?.name ?? String(stepId);
    setNotice(i < 0 ? `No entries of step ${name} among the shown sources.` : null);
    if (i >= 0) setJump((j) => ({ index: i, n: (j?.n ?? 0) + 1 }));
  };
  /** Line → its step: select it and bring the step into view in the step list. */
  const goToStep = useCallback(
    (stepId: number) => {
      setParams({ step: stepId });
      setNotice(null);
      const b = document.getElementById(`step-${stepId}`);
      b?.scrollIntoView({ block: "nearest" });
      b?.focus();
    },
    [setParams],
  );
  const toggleSource = (s: TimelineSource, on: boolean) => {
    const next = new Set(shown);
    if (on) next.add(s);
    else next.delete(s);
    setJump(null);
    setParams({ sources: sourcesParam(next) });
  };

  if (error && !data) return <ErrorBanner message={error.message} />;
  if (!data) return <p className="text-slate-500">Loading…</p>;
  const job = data.job;
  return (
    <div>
      <div className="mb-1 text-sm">
        <Link href={`/machines/${data.machine.id}`} className="text-blue-700 hover:underline">
          ← {data.machine.name}
        </Link>
      </div>
      <PageHeader
        title={`Job #${job.id} · ${job.kind}`}
        subtitle={
          <>
            <Badge state={job.state} /> on {data.machine.name}, by {job.createdBy ?? "system"}
            {job.startedAt != null && <> · {duration((job.finishedAt ?? dataUpdatedAt) - job.startedAt)}</>}
            {active && <span className="ml-2 text-xs">{connected ? "live" : "offline — will resume when reconnected"}</span>}
          </>
        }
        actions={
          <>
            <a className="btn btn-sm" href={`/api/jobs/${job.id}/record`} download>
              Download record
            </a>
            <a className="btn btn-sm" href={`/api/jobs/${job.id}/record?format=txt`} download>
              .txt
            </a>
          </>
        }
      />
      {job.error && <p className="mb-2 text-sm text-red-700">{job.error}</p>}
      <ErrorBanner message={error ? `Could not refresh: ${error.message}` : null} />
      <div className="grid gap-4 lg:grid-cols-[minmax(0,18rem)_minmax(0,1fr)]">
        <StepList steps={data.steps} counts={byStep} selected={selectedStep} onSelect={goToLines} now={dataUpdatedAt} />
        <section aria-label="Timeline" className="card flex min-w-0 flex-col gap-2 p-3">
          <fieldset className="flex flex-wrap items-center gap-x-3 gap-y-1 text-sm">
            <legend className="sr-only">Sources</legend>
            <span className="text-xs font-medium text-slate-600" aria-hidden>
              Sources:
            </span>
            {TIMELINE_SOURCES.map((s) => (
              <label key={s} className="flex items-center gap-1">
                <input type="checkbox" checked={shown.has(s)} onChange={(e) => toggleSource(s, e.target.checked)} />
                {SOURCE_LABELS[s]} <span className="text-xs tabular-nums text-slate-500">({bySource[s]})</span>
              </label>
            ))}
            <span className="ml-auto text-xs text-slate-600" data-testid="timeline-count">
              {plural(entries.length, "entry", "entries")} shown
            </span>
          </fieldset>
          {notice && (
            <p role="status" className="text-xs text-amber-800">
              {notice}
            </p>
          )}
          <Axis
            entries={entries}
            selectedStep={selectedStep}
            onStep={goToStep}
            jump={jump}
            jobId={jobId}
            initialIndex={selectedStep != null ? firstIndexOfStep(entries, selectedStep) : -1}
          />
          <p className="text-xs text-slate-600">
            Times are UTC. Console lines are on the axis while a console viewer was open (the transcript is recorded then); the downloaded record also has the
            raw transcript.
          </p>
        </section>
      </div>
    </div>
  );
}
