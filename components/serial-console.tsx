"use client";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { useLive } from "./live";
import { useSession } from "./session";

interface ConsoleStatus {
  machineId: number;
  state: "opening" | "open" | "closed" | "error";
  holder: string | null;
  viewers: number;
  error?: string;
  retryInS?: number;
}
type Ack = { ok: boolean; error?: string; status?: ConsoleStatus; recent?: ArrayBuffer; canType?: boolean };

/**
 * A machine's serial console (SOL) in xterm.js, over the socket gateway's `console:<id>` room. Everyone sees the
 * same bytes; whoever holds the keyboard types. History lives in the transcript (view / download links).
 */
export function SerialConsole({ machineId }: { machineId: number }) {
  const { socket, connected } = useLive();
  const { user } = useSession();
  const box = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<ConsoleStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [canType, setCanType] = useState(false);
  const holding = !!status && status.holder === user?.name && canType;
  const holdingRef = useRef(false);
  useLayoutEffect(() => {
    holdingRef.current = holding;
  });

  useEffect(() => {
    if (!socket || !connected || !box.current) return;
    let disposed = false;
    let term: import("@xterm/xterm").Terminal | undefined;
    const onData = (m: { machineId: number; data: ArrayBuffer }) => {
      if (m.machineId === machineId) term?.write(new Uint8Array(m.data));
    };
    const onStatus = (s: ConsoleStatus) => s.machineId === machineId && setStatus(s);
    void import("@xterm/xterm").then(({ Terminal }) => {
      if (disposed || !box.current) return;
      term = new Terminal({ convertEol: false, fontSize: 13, rows: 24, cols: 100, scrollback: 5000, theme: { background: "#0f172a" } });
      term.open(box.current);
      term.onData((d) => {
        if (holdingRef.current) socket.emit("console:input", { machineId, data: d });
      });
      socket.on("console:data", onData);
      socket.on("console:status", onStatus);
      socket.emit("console:join", { machineId }, (r: Ack) => {
        if (disposed) return;
        if (!r.ok) return setError(r.error ?? "Console unavailable");
        setError(null);
        setCanType(!!r.canType);
        if (r.status) setStatus(r.status);
        if (r.recent && r.recent.byteLength) term?.write(new Uint8Array(r.recent));
      });
    });
    return () => {
      disposed = true;
      socket.off("console:data", onData);
      socket.off("console:status", onStatus);
      socket.emit("console:leave", { machineId });
      term?.dispose();
    };
  }, [socket, connected, machineId]);

  const keyboard = (what: "take" | "release") =>
    socket?.emit(`console:${what}`, { machineId }, (r: Ack) => setError(r.ok ? null : (r.error ?? "Refused")));

  return (
    <div className="space-y-2">
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <span data-testid="console-state">
          Console: <b>{status?.state ?? (connected ? "connecting" : "offline")}</b>
          {status ? ` · ${status.viewers} watching` : ""}
          {status?.retryInS !== undefined ? ` · reconnecting in ${status.retryInS} s` : ""}
        </span>
        <span data-testid="console-holder" className="text-slate-600">
          {status?.holder ? `Keyboard: ${status.holder}` : "Keyboard: free"}
        </span>
        {canType &&
          (holding ? (
            <button className="btn btn-sm" onClick={() => keyboard("release")}>
              Release keyboard
            </button>
          ) : (
            <button className="btn btn-sm btn-primary" disabled={status?.state !== "open"} onClick={() => keyboard("take")}>
              Take keyboard
            </button>
          ))}
        <a className="ml-auto text-blue-700 hover:underline" href={`/api/consoles/${machineId}/transcript`} target="_blank" rel="noreferrer">
          View transcript
        </a>
        <a className="text-blue-700 hover:underline" href={`/api/consoles/${machineId}/transcript?download=1`}>
          Download transcript
        </a>
      </div>
      {(error || (status?.error && status.state !== "open")) && (
        <p role="alert" className="text-sm text-red-700">
          {error ?? status?.error}
        </p>
      )}
      <div ref={box} className="overflow-hidden rounded bg-slate-900 p-1" data-testid="serial-console" aria-label="Serial console" />
    </div>
  );
}
