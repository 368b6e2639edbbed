import type http from "node:http";
import { Server, type DefaultEventsMap, type Socket as IoSocket } from "socket.io";
import { z } from "zod";
import type { SessionUser } from "../../lib/dto";
import { rooms, type LiveEvent } from "../../lib/live-events";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import { handshakeToken, tokenSocketUser } from "../auth/tokens";
import { AppError } from "../../lib/errors";
import type { Db } from "../db/client";
import { storeOf, type Store } from "../db/store";
import type { Logger } from "../log";
import type { ConsoleManager } from "../oob/console/manager";
import type { EventBus } from "./bus";

const subscribeSchema = z.object({ machineId: z.number().int().positive() });
/**
 * `subscribe`/`unsubscribe` name a machine (its events and logs), one job (its log lines and step changes) or one
 * batch (the step changes of its jobs: the batch page's per-machine progress).
 */
const roomSchema = z.union([subscribeSchema, z.object({ jobId: z.number().int().positive() }), z.object({ batchId: z.number().int().positive() })]);
const roomOf = (r: z.infer<typeof roomSchema>) =>
  "machineId" in r ? rooms.machine(r.machineId) : "jobId" in r ? rooms.job(r.jobId) : rooms.batch(r.batchId);
const consoleInputSchema = z.object({ machineId: z.number().int().positive(), data: z.string().min(1).max(4096) });
type Ack = (r: { ok: boolean; error?: string; [k: string]: unknown }) => void;
/** What the handshake stores on a socket: its user (re-read on every message), session cookie or API token. */
interface SocketData {
  user: SessionUser;
  token: string | undefined;
  bearer: string | null | undefined;
  releaseKeyboards?: () => void;
}
type Socket = IoSocket<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, SocketData>;

/**
 * The only module that talks socket.io. Sessions are checked at the handshake (cookie), every client joins
 * `fleet`, and may subscribe to `machine:<id>` rooms. Bus events are fanned out to the rooms they concern.
 * A socket does not outlive its session or keep an old role: each message it sends re-reads its session (so a
 * changed role applies at once), and `user.access.changed` (logout, disabled, new password, new role) re-checks
 * that user's sockets, disconnecting those whose session ended and releasing a console keyboard a lost role held.
 */
export function attachGateway(opts: {
  httpServer: http.Server;
  db: Db;
  /** Where sessions and tokens are read (server/auth); the Store over `db` when absent. */
  store?: Store;
  bus: EventBus;
  log: Logger;
  onClientCount?: (n: number) => void;
  /** Serial consoles (server/oob/console): rooms `console:<id>`; viewers watch, operators type. */
  consoles?: ConsoleManager;
}): { io: Server; close: () => Promise<void> } {
  const io = new Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, SocketData>(opts.httpServer, { path: "/socket.io", serveClient: false });

  const store = opts.store ?? storeOf({ db: opts.db });
  const userOf = (bearer: string | null | undefined, token: string | undefined) =>
    bearer !== undefined ? tokenSocketUser(store, bearer) : sessionUser(store, token);

  io.use((socket, next) => {
    const bearer = handshakeToken(socket.handshake);
    const token = parseCookies(socket.handshake.headers.cookie)[SESSION_COOKIE];
    userOf(bearer, token).then(
      (user) => {
        if (!user) return next(new Error("UNAUTHENTICATED"));
        socket.data.user = user;
        socket.data.token = token;
        socket.data.bearer = bearer;
        next();
      },
      (err: unknown) => {
        opts.log.error("socket handshake: reading the session failed", { error: String(err) });
        next(new Error("UNAVAILABLE"));
      },
    );
  });

  /**
   * The socket's user as the database says now (its session, or its API token: revoked, expired or a disabled
   * owner ends it too); null (and the socket disconnected) when that ended.
   */
  const currentUser = async (socket: Socket): Promise<SessionUser | null> => {
    const user = await userOf(socket.data.bearer, socket.data.token).catch((err: unknown) => {
      opts.log.error("socket: reading the session failed", { error: String(err) });
      return null;
    });
    if (!user) {
      socket.disconnect(true);
      return null;
    }
    socket.data.user = user;
    return user;
  };

  io.on("connection", (socket) => {
    const user = socket.data.user;
    void socket.join(rooms.fleet);
    // A session may have ended between the handshake and now (then the socket is disconnected).
    void currentUser(socket);
    opts.onClientCount?.(io.engine.clientsCount);
    socket.on("subscribe", async (raw: unknown, ack?: (r: { ok: boolean; error?: string }) => void) => {
      const p = roomSchema.safeParse(raw);
      if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }, { jobId: number } or { batchId: number }" });
      if (!(await currentUser(socket))) return ack?.({ ok: false, error: "Your session has ended; sign in again" });
      // Every role (viewer and up; the handshake checked the session) may watch; room membership is read-only.
      // The ack comes after the join, so a client that backfills on ack cannot miss a line in between.
      await socket.join(roomOf(p.data));
      ack?.({ ok: true });
    });
    socket.on("unsubscribe", (raw: unknown) => {
      const p = roomSchema.safeParse(raw);
      if (p.success) void socket.leave(roomOf(p.data));
    });
    if (opts.consoles) attachConsoleHandlers(socket, () => currentUser(socket), opts.consoles, opts.log);
    socket.on("disconnect", () => opts.onClientCount?.(io.engine.clientsCount));
    opts.log.debug("socket connected", { user: user.name });
  });

  const unsubscribe = opts.bus.subscribe((e: LiveEvent) => {
    // Nobody connected (an API-only client, a script): nothing to fan out, and socket.io would still encode every
    // event for its rooms (~5% of an enrollment's CPU in a profile).
    if (io.engine.clientsCount === 0) return;
    switch (e.type) {
      case "user.access.changed":
        // Server-internal: re-check that user's sockets (a lost session disconnects, a lost role releases).
        for (const socket of io.of("/").sockets.values()) {
          if (socket.data.user?.id !== e.userId) continue;
          const before = socket.data.user;
          void currentUser(socket).then((now) => {
            if (now && CAN_TYPE.includes(before.role) && !CAN_TYPE.includes(now.role)) socket.data.releaseKeyboards?.();
          });
        }
        break;
      case "netboot.apply":
      case "netboot.applied":
        break; // server-internal: between the netboot services of the processes
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
        // Log lines and step changes only go to those watching the machine, the job (or its batch), never to the fleet.
        io.to(rooms.machine(e.machineId)).to(rooms.job(e.jobId)).emit("live", e);
        break;
      case "step.changed": {
        const to = io.to(rooms.machine(e.machineId)).to(rooms.job(e.jobId));
        (e.batchId === null ? to : to.to(rooms.batch(e.batchId))).emit("live", e);
        break;
      }
      default:
        io.to(rooms.fleet).emit("live", e);
    }
  });

  const unsubscribeConsoles = opts.consoles?.subscribe((m) => {
    if (m.type === "data") io.to(rooms.console(m.machineId)).emit("console:data", { machineId: m.machineId, data: m.data });
    else io.to(rooms.console(m.status.machineId)).emit("console:status", m.status);
  });

  return {
    io,
    close: async () => {
      unsubscribe();
      unsubscribeConsoles?.();
      await io.close();
    },
  };
}

const CAN_TYPE: SessionUser["role"][] = ["operator", "admin"];

/** Console messages of one socket: join/leave (any role), take/release/input (operators and admins only). */
function attachConsoleHandlers(socket: Socket, currentUser: () => Promise<SessionUser | null>, consoles: ConsoleManager, log: Logger) {
  const joined = new Set<number>();
  // Each message waits for its session check; one queue per socket keeps keystrokes and take/release in order.
  let queue: Promise<void> = Promise.resolve();
  const inOrder = (fn: () => void | Promise<void>) => {
    queue = queue.then(fn).catch((err: unknown) => log.error("console handler failed", { error: String(err) }));
  };
  const releaseAll = () => {
    for (const id of joined) void consoles.release(id, socket.id).catch((err: unknown) => log.error("console: releasing the keyboard failed", { error: String(err) }));
  };
  socket.data.releaseKeyboards = releaseAll;
  const ended = (ack: Ack | undefined) => ack?.({ ok: false, error: "Your session has ended; sign in again" });
  const reply = async (ack: Ack | undefined, fn: () => unknown) => {
    try {
      const r = await fn();
      ack?.({ ok: true, ...(r && typeof r === "object" ? r : {}) });
    } catch (err) {
      if (!(err instanceof AppError)) log.error("console handler failed", { error: String(err) });
      ack?.({ ok: false, error: err instanceof AppError ? err.message : "Internal error" });
    }
  };
  socket.on("console:join", (raw: unknown, ack?: Ack) => inOrder(async () => {
    const p = subscribeSchema.safeParse(raw);
    if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }" });
    const id = p.data.machineId;
    const user = await currentUser();
    if (!user) return ended(ack);
    try {
      await socket.join(rooms.console(id));
      joined.add(id);
      const { status, recent } = await consoles.join(id, socket.id, user.name);
      ack?.({ ok: true, status, recent, canType: CAN_TYPE.includes(user.role) });
    } catch (err) {
      joined.delete(id);
      void socket.leave(rooms.console(id));
      ack?.({ ok: false, error: err instanceof AppError ? err.message : "Internal error" });
    }
  }));
  socket.on("console:leave", (raw: unknown, ack?: Ack) => inOrder(() => {
    const p = subscribeSchema.safeParse(raw);
    if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }" });
    joined.delete(p.data.machineId);
    void socket.leave(rooms.console(p.data.machineId));
    return reply(ack, () => consoles.leave(p.data.machineId, socket.id));
  }));
  /** The current user when their role may type (read from the session now, not from the handshake). */
  const operatorOnly = async (ack: Ack | undefined): Promise<SessionUser | null> => {
    const user = await currentUser();
    if (!user) return ended(ack), null;
    if (CAN_TYPE.includes(user.role)) return user;
    // Whoever lost the role also loses a keyboard they held.
    releaseAll();
    ack?.({ ok: false, error: `Typing into a console needs the operator role; you are ${user.role}` });
    return null;
  };
  socket.on("console:take", (raw: unknown, ack?: Ack) => inOrder(async () => {
    const p = subscribeSchema.safeParse(raw);
    if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }" });
    const user = await operatorOnly(ack);
    if (user) await reply(ack, () => consoles.take(p.data.machineId, socket.id, user.name));
  }));
  socket.on("console:release", (raw: unknown, ack?: Ack) => inOrder(() => {
    const p = subscribeSchema.safeParse(raw);
    if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number }" });
    return reply(ack, () => consoles.release(p.data.machineId, socket.id));
  }));
  socket.on("console:input", (raw: unknown, ack?: Ack) => inOrder(async () => {
    const p = consoleInputSchema.safeParse(raw);
    if (!p.success) return ack?.({ ok: false, error: "expected { machineId: number, data: string }" });
    if (await operatorOnly(ack)) await reply(ack, () => consoles.input(p.data.machineId, socket.id, p.data.data));
  }));
  // After any message still queued (a join in flight must not outlive the socket).
  socket.on("disconnect", () => inOrder(async () => {
    for (const id of joined) await consoles.leave(id, socket.id);
  }));
}
