import type http from "node:http";
import { Server } from "socket.io";
import { z } from "zod";
import type { SessionUser } from "../../lib/dto";
import { rooms, type LiveEvent } from "../../lib/live-events";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { EventBus } from "./bus";

const subscribeSchema = z.object({ machineId: z.number().int().positive() });

/**
 * The only module that talks socket.io. Sessions are checked at the handshake (cookie), every client joins
 * `fleet`, and may subscribe to `machine:<id>` rooms. Bus events are fanned out to the rooms they concern.
 */
export function attachGateway(opts: {
  httpServer: http.Server;
  db: Db;
  bus: EventBus;
  log: Logger;
  onClientCount?: (n: number) => void;
}): { io: Server; close: () => Promise<void> } {
  const io = new Server(opts.httpServer, { path: "/socket.io", serveClient: false });

  io.use((socket, next) => {
    const token = parseCookies(socket.handshake.headers.cookie)[SESSION_COOKIE];
    const user = sessionUser(opts.db, token);
    if (!user) return next(new Error("UNAUTHENTICATED"));
    socket.data.user = user;
    next();
  });

  io.on("connection", (socket) => {
    const user = socket.data.user as SessionUser;
    void socket.join(rooms.fleet);
    opts.onClientCount?.(io.engine.clientsCount);
    socket.on("subscribe", (raw: unknown, ack?: (r: { ok: boolean; error?: string }) => void) => {
      const p = subscribeSchema.safeParse(raw);
      if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }" });
      // Every role may watch a machine; room membership is read-only.
      void socket.join(rooms.machine(p.data.machineId));
      ack?.({ ok: true });
    });
    socket.on("unsubscribe", (raw: unknown) => {
      const p = subscribeSchema.safeParse(raw);
      if (p.success) void socket.leave(rooms.machine(p.data.machineId));
    });
    socket.on("disconnect", () => opts.onClientCount?.(io.engine.clientsCount));
    opts.log.debug("socket connected", { user: user.name });
  });

  const unsubscribe = opts.bus.subscribe((e: LiveEvent) => {
    switch (e.type) {
      case "machine.changed":
      case "machine.deleted":
        io.to(rooms.fleet).to(rooms.machine(e.machineId)).emit("live", e);
        break;
      case "event.created":
        io.to(rooms.fleet).emit("live", e);
        break;
      case "job.changed":
        io.to(rooms.fleet).to(rooms.machine(e.machineId)).to(rooms.job(e.jobId)).emit("live", e);
        break;
      case "log.lines":
        // Log lines only go to those watching the machine or the job, never to the whole fleet.
        io.to(rooms.machine(e.machineId)).to(rooms.job(e.jobId)).emit("live", e);
        break;
      default:
        io.to(rooms.fleet).emit("live", e);
    }
  });

  return {
    io,
    close: async () => {
      unsubscribe();
      await io.close();
    },
  };
}
