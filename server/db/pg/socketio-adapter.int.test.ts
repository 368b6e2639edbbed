import http from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/postgres-adapter";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgCluster, type PgCluster } from "../../testing/pg-cluster";
import { until } from "../../testing/until";
import type pg from "pg";
import { createAdapterPool } from "./adapter-pool";
import { openPgDatabase, type PgDb } from "./client";

// What docs/ARCHITECTURE.md ("Live events across processes") relies on, checked on a real PostgreSQL: two
// socket.io servers, each with its own pool as two Rackhand processes would have, share rooms through
// @socket.io/postgres-adapter (LISTEN/NOTIFY, the attachments table of drizzle-pg/0002 for big or binary packets).
// The adapter has a pool of its own (adapter-pool.ts: why).
let cluster: PgCluster;
const procs: { db: PgDb; adapterPool: pg.Pool; io: Server; http: http.Server; url: string }[] = [];
let client: Socket;
const got: { n: number; text?: string; bytes?: number[] }[] = [];

beforeAll(async () => {
  cluster = await startPgCluster();
  const url = await cluster.createDatabase();
  for (let i = 0; i < 2; i++) {
    const db = await openPgDatabase(url, { max: 4, applicationName: `io${i}` });
    const adapterPool = createAdapterPool(url, { applicationName: `io${i}-adapter` });
    const server = http.createServer();
    const io = new Server(server, { adapter: createAdapter(adapterPool, { channelPrefix: "rackhand", errorHandler: () => {} }) });
    io.on("connection", (s) => void s.join("fleet"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    procs.push({ db, adapterPool, io, http: server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  }
  client = connect(procs[1]!.url, { transports: ["websocket"], reconnection: false });
  client.on("ev", (m: { n: number; text?: string; bytes?: Buffer }) => got.push({ n: m.n, text: m.text, bytes: m.bytes ? [...new Uint8Array(m.bytes)] : undefined }));
  await until("the client to connect to process B", () => client.connected);
}, 120_000);

afterAll(async () => {
  client?.close();
  for (const p of procs) await new Promise((r) => p.io.close(r));
  // The server before the pools: a fast shutdown ends every session, so closing the pools cannot hang on one.
  await cluster?.stop();
  for (const p of procs) await Promise.all([p.adapterPool.end(), p.db.$client.end()]);
});

/** Emit from process A until B's client has it (the adapter's LISTEN connection starts asynchronously). */
async function emitUntilSeen(n: number, extra: { text?: string; bytes?: Buffer } = {}, timeoutMs = 15_000): Promise<void> {
  await until(
    `event ${n} through PostgreSQL`,
    async () => {
      if (got.some((g) => g.n === n)) return true;
      procs[0]!.io.to("fleet").emit("ev", { n, ...extra });
      await new Promise((r) => setTimeout(r, 200));
      return got.some((g) => g.n === n);
    },
    timeoutMs,
  );
}

describe("@socket.io/postgres-adapter between two processes", () => {
  it("an event emitted to a room on process A reaches a browser connected to process B", async () => {
    await emitUntilSeen(1);
    // Once the channel is up, each emit arrives once, in the order emitted.
    for (let n = 2; n <= 20; n++) procs[0]!.io.to("fleet").emit("ev", { n });
    await until("events 2-20", () => got.filter((g) => g.n >= 2 && g.n <= 20).length === 19);
    expect(got.filter((g) => g.n >= 2).map((g) => g.n)).toEqual(Array.from({ length: 19 }, (_, i) => i + 2));
  });

  // These take an INSERT before their NOTIFY, so they may overtake or be overtaken by small ones: ordered streams
  // (log lines, console bytes) carry their own sequence numbers.
  it("packets over NOTIFY's 8,000 bytes and binary ones (console bytes) go through the attachments table", async () => {
    const text = "log line é✓ ".repeat(2000); // ~28 KB
    procs[0]!.io.to("fleet").emit("ev", { n: 100, text });
    const bytes = Buffer.from([0, 1, 2, 27, 91, 50, 74, 255, 10, 13]);
    procs[0]!.io.to("fleet").emit("ev", { n: 101, bytes });
    await until("the big and the binary packets", () => got.some((g) => g.n === 100) && got.some((g) => g.n === 101));
    expect(got.find((g) => g.n === 100)!.text).toBe(text);
    expect(got.find((g) => g.n === 101)!.bytes).toEqual([...bytes]);
    const rows = await procs[0]!.db.$client.query<{ n: string }>("SELECT count(*) AS n FROM socket_io_attachments");
    expect(Number(rows.rows[0]!.n)).toBeGreaterThanOrEqual(2);
  });

  it("after a PostgreSQL restart the adapter listens again, and neither process crashed", async () => {
    await cluster.restart();
    // The adapter reconnects its LISTEN connection after 1-3 s; emits before that reach local clients only.
    await emitUntilSeen(200, {}, 30_000);
    expect(client.connected).toBe(true);
    // And again after a second restart: the dead LISTEN connections gave their pool slots back.
    await cluster.restart();
    await emitUntilSeen(201, {}, 30_000);
    for (const p of procs) expect(p.adapterPool.totalCount).toBeLessThanOrEqual(2);
  }, 60_000);
});
