"use client";
import { memo, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { JobDto, LogLineDto } from "@/lib/jobs";
import { EMPTY_LOG, formatLogLine, mergeLines, type LogBuffer } from "@/lib/log-buffer";
import { LogCatchUp } from "@/lib/log-catchup";
import { plural } from "@/lib/format";
import { InstallerPhases } from "./installer-phases";
import { useJobLog } from "./live";
import { errorInfo, useTRPCClient } from "./trpc";

/** Lines kept in the browser; older ones leave the view (not the database: the download has them all). */
export const LOG_VIEW_CAP = 20_000;
/** Backfill page size (the server's maximum). */
const PAGE = 5000;

// The pane is dark in the light theme and light in the dark one (app/theme-dark.css turns the scales round): colours
// from the 200/300 end of each scale keep 4.5:1 in both.
const STREAM_STYLE: Record<string, string> = {
  stdout: "text-slate-300",
  stderr: "text-red-200",
  agent: "text-sky-200",
  installer: "text-emerald-200",
  phase: "text-amber-200",
};

function Highlighted({ text, query }: { text: string; query: string }) {
  if (!query) return <>{text}</>;
  const parts: React.ReactNode[] = [];
  const lower = text.toLowerCase();
  let i = 0;
  for (let at = lower.indexOf(query); at >= 0; at = lower.indexOf(query, i)) {
    parts.push(text.slice(i, at), <mark key={at} className="rounded-sm bg-yellow-300 text-slate-900">{text.slice(at, at + query.length)}</mark>);
    i = at + query.length;
  }
  parts.push(text.slice(i));
  return <>{parts}</>;
}

/**
 * A block of lines, re-rendered only when its lines or the search change. Lines only ever join the view (in seq
 * order, each seq once) or leave it at the front, so a block with the same first seq, last seq and count holds the
 * same lines. The count matters: a backfilled line can land between lines already shown (a live line came first).
 */
const LogBlock = memo(
  function LogBlock({ lines, query }: { lines: LogLineDto[]; query: string; first: number; last: number }) {
    return (
      <>
        {lines.map((l) => (
          <div key={l.seq} className="flex gap-2 whitespace-pre-wrap break-all px-2 hover:bg-slate-800" data-seq={l.seq}>
            <span className="shrink-0 select-none text-slate-300">{new Date(l.ts).toISOString().slice(11, 19)}</span>
            <span className={`w-12 shrink-0 select-none ${STREAM_STYLE[l.stream] ?? "text-slate-300"}`}>{l.stream}</span>
            <span className={l.stream === "stderr" ? "text-red-200" : "text-slate-100"}>
              <Highlighted text={l.text} query={query} />
            </span>
          </div>
        ))}
      </>
    );
  },
  (a, b) => a.first === b.first && a.last === b.last && a.lines.length === b.lines.length && a.query === b.query,
);
const BLOCK = 500;

/**
 * A job's install log: backfilled from the database, then live over socket.io; after a reconnect it backfills
 * from the last seq it holds. Follow/pause, search (highlight or only matching lines), download as .log.
 */
export function LogPane({ job, machineName }: { job: Pick<JobDto, "id" | "state" | "kind">; machineName: string }) {
  const client = useTRPCClient();
  const [buf, setBuf] = useState<LogBuffer>(EMPTY_LOG);
  const bufRef = useRef(buf);
  bufRef.current = buf;
  const queue = useRef<LogLineDto[][]>([]);
  /** The highest seq pushed for this job (queued or merged). */
  const pushedMax = useRef(-1);
  const frame = useRef<{ raf: number; timer: ReturnType<typeof setTimeout> } | null>(null);
  const [follow, setFollow] = useState(true);
  const [pausedAt, setPausedAt] = useState(0);
  const [search, setSearch] = useState("");
  const [onlyMatches, setOnlyMatches] = useState(false);
  /** Loading the log (shown while a catch-up retries); downloads report apart, so neither clears the other. */
  const [error, setError] = useState<string | null>(null);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const [downloading, setDownloading] = useState(false);
  const scroller = useRef<HTMLDivElement>(null);
  const jobId = job.id;

  // A different job starts from an empty view.
  useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- the view resets with the refs that mirror it, which only an effect may touch
    setBuf(EMPTY_LOG);
    bufRef.current = EMPTY_LOG;
    queue.current = [];
    pushedMax.current = -1;
    setError(null);
  }, [jobId]);

  /**
   * Merge incoming lines once per animation frame: a burst of events costs one render. A timer backs the frame up,
   * since a hidden tab gets no frames and its queue would grow for as long as it stays hidden.
   */
  const flush = useCallback(() => {
    if (frame.current) {
      cancelAnimationFrame(frame.current.raf);
      clearTimeout(frame.current.timer);
    }
    frame.current = null;
    const batches = queue.current;
    queue.current = [];
    setBuf((b) => batches.reduce((acc, l) => mergeLines(acc, l, LOG_VIEW_CAP), b));
  }, []);
  const push = useCallback(
    (lines: LogLineDto[]) => {
      if (!lines.length) return;
      queue.current.push(lines);
      for (const l of lines) if (l.seq > pushedMax.current) pushedMax.current = l.seq;
      frame.current ??= { raf: requestAnimationFrame(flush), timer: setTimeout(flush, 250) };
    },
    [flush],
  );
  useEffect(() => () => void (frame.current && (cancelAnimationFrame(frame.current.raf), clearTimeout(frame.current.timer))), []);

  /** The highest seq rendered or waiting to be: where a (re)subscription resumes. */
  const resumeSeq = () => Math.max(bufRef.current.lastSeq, pushedMax.current);
  /** Backfills and gap repairs of this job's log (lib/log-catchup.ts), retried until they succeed. */
  const catchUp = useRef<LogCatchUp | null>(null);
  useEffect(() => {
    const c = new LogCatchUp({
      fetchPage: async (afterSeq) => {
        try {
          return await client.jobs.logs.query({ jobId, afterSeq, limit: PAGE });
        } catch (err) {
          const info = errorInfo(err);
          throw Object.assign(new Error(info.message), { status: info.status });
        }
      },
      pageSize: PAGE,
      onLines: push,
      onError: setError,
      // 4xx but a timeout or throttling: the request itself is refused (no such job, signed out, not allowed).
      permanent: (err) => {
        const status = (err as { status?: number }).status;
        return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
      },
    });
    catchUp.current = c;
    return () => c.stop();
  }, [client, jobId, push]);

  const cursor = useRef(-1);
  const { connected } = useJobLog(jobId, {
    onLines: (lines) => {
      const held = resumeSeq();
      push(lines);
      catchUp.current?.live(lines, held);
    },
    onJoined: () => catchUp.current?.request(cursor.current),
  });
  // Captured while disconnected (before the next subscribe), so lines that arrive live after the join cannot
  // move the backfill cursor past lines that were missed.
  useEffect(() => {
    if (!connected) cursor.current = resumeSeq();
  });
  useEffect(() => {
    cursor.current = -1;
  }, [jobId]);

  const total = buf.lines.length + buf.dropped;
  const query = search.trim().toLowerCase();
  const shown = query && onlyMatches ? buf.lines.filter((l) => l.text.toLowerCase().includes(query)) : buf.lines;
  const matches = query ? (onlyMatches ? shown.length : buf.lines.filter((l) => l.text.toLowerCase().includes(query)).length) : 0;

  useLayoutEffect(() => {
    const el = scroller.current;
    if (follow && el) el.scrollTop = el.scrollHeight;
  }, [follow, shown]);

  const toggleFollow = () => {
    if (follow) setPausedAt(total);
    setFollow(!follow);
  };

  async function download() {
    setDownloading(true);
    setDownloadError(null);
    try {
      const out: string[] = [];
      for (let after = -1; ; ) {
        const page = await client.jobs.logs.query({ jobId, afterSeq: after, limit: PAGE });
        for (const l of page) out.push(formatLogLine(l));
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.seq;
      }
      const url = URL.createObjectURL(new Blob([out.join("\n") + (out.length ? "\n" : "")], { type: "text/plain" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `${machineName}-job-${jobId}.log`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setDownloadError(`Download failed: ${errorInfo(err).message}`);
    } finally {
      setDownloading(false);
    }
  }

  const blocks: LogLineDto[][] = [];
  for (let i = 0; i < shown.length; i += BLOCK) blocks.push(shown.slice(i, i + BLOCK));

  return (
    <section aria-label="Install log" className="flex min-w-0 flex-col gap-2">
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <h3 className="font-semibold">
          Log of job #{jobId} <span className="font-normal text-slate-500">({job.kind})</span>
        </h3>
        <span className="text-xs text-slate-500" data-testid="log-count">
          {plural(total, "line")}
        </span>
        {!connected && <span className="text-xs text-amber-700">offline — will resume when reconnected</span>}
        <div className="ml-auto flex flex-wrap items-center gap-2">
          <input
            type="search"
            className="input h-8 w-48 text-sm"
            placeholder="Search the log"
            aria-label="Search the log"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
          <label className="flex items-center gap-1 text-xs text-slate-600">
            <input type="checkbox" checked={onlyMatches} onChange={(e) => setOnlyMatches(e.target.checked)} />
            Only matching lines
          </label>
          {query && (
            <span className="text-xs text-slate-600" data-testid="log-matches">
              {plural(matches, "match", "matches")}
            </span>
          )}
          <button
            type="button"
            className={`btn h-8 ${follow ? "btn-primary" : ""}`}
            aria-pressed={follow}
            title={follow ? "Scrolls to new lines; click to pause" : "Paused; click to follow new lines"}
            onClick={toggleFollow}
          >
            <span aria-hidden>{follow ? "▶ " : "❚❚ "}</span>Follow
          </button>
          <button type="button" className="btn h-8" disabled={downloading} onClick={() => void download()}>
            {downloading ? "Preparing…" : "Download .log"}
          </button>
        </div>
      </div>
      <InstallerPhases lines={buf.lines} />
      {[error, downloadError].map(
        (e) =>
          e && (
            <p key={e} role="alert" className="text-sm text-red-700">
              {e}
            </p>
          ),
      )}
      {buf.dropped > 0 && (
        <p className="text-xs text-slate-500" data-testid="log-dropped">
          {plural(buf.dropped, "older line")} not shown (the view keeps the last {LOG_VIEW_CAP.toLocaleString("en-US")}); the download has them all.
        </p>
      )}
      <div
        ref={scroller}
        role="log"
        aria-label={`Log lines of job ${jobId}`}
        aria-live="off"
        className="h-80 overflow-auto rounded-md bg-slate-950 py-1 font-mono text-xs leading-5"
        onWheel={(e) => e.deltaY < 0 && follow && toggleFollow()}
      >
        {shown.length === 0 ? (
          <p className="px-2 text-slate-300">{query && onlyMatches ? "No matching lines." : job.state === "running" || job.state === "queued" ? "Waiting for log lines…" : "No log lines."}</p>
        ) : (
          blocks.map((b) => <LogBlock key={b[0]!.seq} lines={b} query={query} first={b[0]!.seq} last={b[b.length - 1]!.seq} />)
        )}
      </div>
      {!follow && total > pausedAt && (
        <button type="button" className="self-start text-xs text-blue-700 hover:underline" onClick={toggleFollow}>
          {plural(total - pausedAt, "new line")} below — follow
        </button>
      )}
    </section>
  );
}
