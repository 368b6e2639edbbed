"use client";
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from "react";
import { io, type Socket } from "socket.io-client";
import type { LogLineDto } from "@/lib/jobs";
import type { LiveEvent } from "@/lib/live-events";
import { useTRPC } from "./trpc";

interface LiveState {
  connected: boolean;
  socket: Socket | null;
}
/** How long a join waits for the server's acknowledgement before it is sent again (the first answer counts). */
const JOIN_ACK_TIMEOUT_MS = 5000;
const LiveContext = createContext<LiveState>({ connected: false, socket: null });

/**
 * One socket.io connection per tab. Live events invalidate the queries they affect, batched per animation
 * frame so a bulk action touching thousands of machines costs one refetch, not thousands.
 */
export function LiveProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const trpc = useTRPC();
  const [state, setState] = useState<LiveState>({ connected: false, socket: null });
  const pending = useRef(new Set<string>());
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useEffect(() => {
    const socket = io({ path: "/socket.io", transports: ["websocket", "polling"] });
    const keys = {
      machines: trpc.machines.pathKey(),
      racks: trpc.racks.pathKey(),
      events: trpc.events.pathKey(),
      jobs: trpc.jobs.forMachine.pathKey(),
    };
    const flush = () => {
      timer.current = null;
      for (const k of pending.current) void queryClient.invalidateQueries({ queryKey: keys[k as keyof typeof keys] });
      pending.current.clear();
    };
    const mark = (...names: (keyof typeof keys)[]) => {
      for (const n of names) pending.current.add(n);
      timer.current ??= setTimeout(flush, 100);
    };
    socket.on("connect", () => setState({ connected: true, socket }));
    socket.on("disconnect", () => setState({ connected: false, socket }));
    socket.on("connect_error", () => setState({ connected: false, socket }));
    socket.on("live", (e: LiveEvent) => {
      switch (e.type) {
        case "machine.changed":
        case "machine.deleted":
        case "machines.bulk":
          mark("machines", "racks");
          break;
        case "rack.changed":
        case "rack.deleted":
          mark("racks", "machines");
          break;
        case "event.created":
          mark("events");
          break;
        case "job.changed":
        case "step.changed":
          mark("jobs");
          break;
      }
    });
    // eslint-disable-next-line react-hooks/set-state-in-effect -- this effect creates the socket; publishing it is the sync
    setState({ connected: socket.connected, socket });
    return () => {
      if (timer.current) clearTimeout(timer.current);
      socket.close();
    };
  }, [queryClient, trpc]);

  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveState {
  return useContext(LiveContext);
}

type Room = { machineId: number } | { jobId: number } | { batchId: number };

/**
 * Join a room on the connected socket and call `onJoined` once the server acknowledges the join (it acknowledges
 * after joining, so a backfill started then misses nothing). The join is sent again while no acknowledgement came
 * (one lost with a dropping connection would leave the caller without its backfill); the first that arrives counts,
 * however late. Returns the leave: no more callbacks, and `unsubscribe` when still connected (after a disconnect
 * the server already forgot the room, and a buffered emit would only arrive late).
 */
function joinRoom(socket: Socket, room: Room, onJoined: () => void = () => undefined): () => void {
  let active = true;
  let joined = false;
  let retry: ReturnType<typeof setTimeout> | null = null;
  const join = () => {
    socket.emit("subscribe", room, (r?: { ok: boolean }) => {
      if (!active || joined || !r?.ok) return;
      joined = true;
      if (retry) clearTimeout(retry);
      onJoined();
    });
    retry = setTimeout(() => active && !joined && socket.connected && join(), JOIN_ACK_TIMEOUT_MS);
  };
  join();
  return () => {
    active = false;
    if (retry) clearTimeout(retry);
    if (socket.connected) socket.emit("unsubscribe", room);
  };
}

/** Join `machine:<id>` while a machine page is open (the room carries per-machine streams). */
export function useMachineRoom(machineId: number) {
  const { socket, connected } = useLive();
  useEffect(() => {
    if (!socket || !connected) return;
    return joinRoom(socket, { machineId });
  }, [socket, connected, machineId]);
}

/**
 * Follow one batch while its page is open: join `batch:<id>` on every (re)connect and call `onChange` (coalesced
 * over `coalesceMs`) when a step of one of its jobs moves, and once after each join (what changed while away).
 * Job and batch state changes come through the fleet room (useBatchInvalidation).
 */
export function useBatchRoom(batchId: number, onChange: () => void, coalesceMs = 250): { connected: boolean } {
  const { socket, connected } = useLive();
  const cb = useRef(onChange);
  useLayoutEffect(() => {
    cb.current = onChange;
  });
  useEffect(() => {
    if (!socket || !connected) return;
    let active = true;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const soon = () => {
      timer ??= setTimeout(() => {
        timer = null;
        if (active) cb.current();
      }, coalesceMs);
    };
    const onLive = (e: LiveEvent) => {
      if (e.type === "step.changed" && e.batchId === batchId) soon();
    };
    socket.on("live", onLive);
    const leave = joinRoom(socket, { batchId }, soon);
    return () => {
      active = false;
      if (timer) clearTimeout(timer);
      socket.off("live", onLive);
      leave();
    };
  }, [socket, connected, batchId, coalesceMs]);
  return { connected };
}

/**
 * Follow one job's log lines while `jobId` is set. On every (re)connect: listen, join `job:<id>`, and once the
 * server acknowledges the join call `onJoined` — the caller then backfills from the last seq it holds, so no line
 * falls between the backfill and the live stream (DESIGN §9; duplicates are the caller's to drop, by seq).
 */
export function useJobLog(
  jobId: number | null,
  handlers: { onLines: (lines: LogLineDto[]) => void; onJoined: () => void },
): { connected: boolean } {
  const { socket, connected } = useLive();
  const h = useRef(handlers);
  useLayoutEffect(() => {
    h.current = handlers;
  });
  useEffect(() => {
    if (!socket || !connected || jobId == null) return;
    let active = true;
    const onLive = (e: LiveEvent) => {
      if (active && e.type === "log.lines" && e.jobId === jobId) h.current.onLines(e.lines);
    };
    socket.on("live", onLive);
    const leave = joinRoom(socket, { jobId }, () => h.current.onJoined());
    return () => {
      active = false;
      socket.off("live", onLive);
      leave();
    };
  }, [socket, connected, jobId]);
  return { connected };
}
