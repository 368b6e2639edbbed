import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiClient } from "./client";
import { LogShipper } from "./log-shipper";

interface Received {
  step: number;
  seqs: number[];
}

/** A log endpoint that fails the way a restarting server does: 503s and dropped connections, then 401s. */
async function flakyServer(plan: (call: number) => "ok" | "503" | "drop" | "401") {
  const got: Received[] = [];
  const stored = new Set<number>();
  let calls = 0;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const what = plan(calls++);
    if (what === "drop") return void req.socket.destroy();
    if (what !== "ok") return void res.writeHead(Number(what), { "content-type": "application/json" }).end('{"error":"x"}');
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { lines: { seq: number }[] };
    const step = Number(req.url!.match(/steps\/(\d+)\//)![1]);
    got.push({ step, seqs: body.lines.map((l) => l.seq) });
    const fresh = body.lines.filter((l) => !stored.has(l.seq));
    for (const l of fresh) stored.add(l.seq);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ accepted: fresh.length }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, got, stored, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) };
}

const servers: { close: () => Promise<unknown> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describe("LogShipper", () => {
  it("delivers every line exactly once, in batches per step, through 503s and dropped connections", async () => {
    const srv = await flakyServer((n) => (n % 3 === 1 ? "503" : n % 3 === 2 ? "drop" : "ok"));
    servers.push(srv);
    const shipper = new LogShipper(new ApiClient(srv.url, 50, () => undefined), 7, { maxBatch: 100, intervalMs: 10, onUnauthorized: async () => false, note: () => undefined });
    for (let i = 0; i < 250; i++) shipper.write(1, `a ${i}`);
    shipper.write(2, "multi\nline\n");
    for (let i = 0; i < 30; i++) shipper.write(1, `b ${i}`);
    await shipper.flush();
    expect(shipper.pending).toBe(0);
    expect([...srv.stored].sort((x, y) => x - y)).toEqual(Array.from({ length: 282 }, (_, i) => i + 7));
    expect(Math.max(...srv.got.map((g) => g.seqs.length))).toBeLessThanOrEqual(100);
    // A batch never mixes steps: lines of step 2 (seqs 257, 258) went alone.
    expect(srv.got.filter((g) => g.step === 2).map((g) => g.seqs)).toEqual([[257, 258]]);
  });

  it("asks for a new token on 401 and resends; drops what is left when the job is over", async () => {
    let relogins = 0;
    const srv = await flakyServer((n) => (n === 0 ? "401" : n < 3 ? "ok" : "401"));
    servers.push(srv);
    const notes: string[] = [];
    const shipper = new LogShipper(new ApiClient(srv.url, 50, () => undefined), 0, {
      maxBatch: 10,
      onUnauthorized: async () => ++relogins === 1,
      note: (t) => void notes.push(t),
    });
    for (let i = 0; i < 40; i++) shipper.write(1, `l ${i}`);
    await shipper.flush();
    expect(relogins).toBe(2);
    expect([...srv.stored].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(notes).toEqual(["job over: 20 log lines not sent"]);
    shipper.write(1, "after the end");
    expect(shipper.pending).toBe(0);
  });

  it("continues from the server's nextSeq and never goes back", async () => {
    const srv = await flakyServer(() => "ok");
    servers.push(srv);
    const shipper = new LogShipper(new ApiClient(srv.url, 50, () => undefined), 5, { onUnauthorized: async () => false, note: () => undefined });
    shipper.write(1, "five");
    shipper.resumeFrom(3);
    shipper.write(1, "six");
    shipper.resumeFrom(12);
    shipper.write(1, "twelve");
    await shipper.flush();
    expect([...srv.stored]).toEqual([5, 6, 12]);
  });
});
