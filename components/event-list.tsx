"use client";
import { useInfiniteQuery } from "@tanstack/react-query";
import Link from "next/link";
import { dateTime, relativeTime } from "@/lib/format";
import type { EventFilter } from "@/lib/schemas";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner } from "./ui";

/** Events newest first, for one machine or the whole fleet (optionally filtered), with "Load older" paging. */
export function EventList({ machineId, limit = 50, filter }: { machineId?: number; limit?: number; filter?: EventFilter }) {
  const trpc = useTRPC();
  const q = useInfiniteQuery(
    trpc.events.list.infiniteQueryOptions(
      { ...filter, machineId, limit },
      { getNextPageParam: (last) => last.nextBefore ?? undefined },
    ),
  );
  const items = q.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <div>
      <ErrorBanner message={q.error ? errorInfo(q.error).message : null} />
      <ol className="divide-y divide-slate-100" aria-label="Events" data-testid="event-list">
        {items.map((e) => (
          <li key={e.id} className="flex flex-wrap gap-x-3 gap-y-0.5 py-1.5 text-sm sm:flex-nowrap">
            <time className="w-20 shrink-0 text-xs text-slate-500" dateTime={new Date(e.ts).toISOString()} title={dateTime(e.ts)}>
              {relativeTime(e.ts)}
            </time>
            <span className="w-40 shrink-0 truncate font-mono text-xs text-slate-500">{e.kind}</span>
            <span className="min-w-0 flex-1 max-sm:order-last max-sm:basis-full">
              {!machineId && e.machineId && e.machineName && (
                <Link href={`/machines/${e.machineId}`} className="mr-1.5 font-medium text-blue-700 hover:underline">
                  {e.machineName}
                </Link>
              )}
              {e.message}
            </span>
            <span className="shrink-0 text-xs text-slate-500">{e.actor}</span>
          </li>
        ))}
        {!q.isLoading && items.length === 0 && <li className="py-4 text-center text-sm text-slate-500">{filter && Object.values(filter).some((v) => v !== undefined) ? "No events match these filters." : "No events yet."}</li>}
      </ol>
      {q.hasNextPage && (
        <button className="btn btn-sm mt-2" disabled={q.isFetchingNextPage} onClick={() => void q.fetchNextPage()}>
          Load older
        </button>
      )}
    </div>
  );
}
