/**
 * Child process of bench/deploy.ts: simulated agents that speak the real agent HTTP protocol (lookup,
 * heartbeat long-poll, logs, results), each step taking a fixed time; plus the log-ingest load and the
 * socket.io fan-out latency probe. Runs apart from the server so the server's CPU is measured alone.
 */
import http from "node:http";
import { io, type Socket } from "socket.io-client";
import { AGENT_API_PREFIX } from "../../lib/agent-protocol";
import { sleep } from "../../lib/retry";
import { retryingPost, runSimulatedAgent } from "../../server/demo/sim-agent";

type FromParent =
  | { type: "config"; api: string; stepMs: number; linesPerStep: number }
  | { type: "boot"; mac: string; nonce: string | null }
  | { type: "cpu" }
  | { type: "ingest"; tokens: { token: string; stepId: number }[]; batches: number; batchLines: number }
  | { type: "fanout"; cookie: string; machineId: number; token: string; stepId: number; subscribers: number; samples: number; seqFrom: number };

let cfg = { api: "", stepMs: 1000, linesPerStep: 5 };
const send = (m: unknown) => process.send!(m);

// node:http with keep-alive rather than fetch: the simulated agents share the host's cores with the server, and
// fetch (undici's WHATWG layer) cost about twice the CPU per request here, which showed up as agent-side latency.
const keepAlive = new http.Agent({ keepAlive: true });

function request(path: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${cfg.api}${AGENT_API_PREFIX}${path}`,
      {
        method: "POST",
        agent: keepAlive,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...(token && { authorization: `Bearer ${token}` }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const post = retryingPost(request);

const running = new Set<string>();

/** One simulated agent (server/demo/sim-agent.ts, shared with the demo lab): booted by the power cycle, it runs its job to the end. */
function simAgent(mac: string, nonce: string | null): Promise<void> {
  return runSimulatedAgent(post, { macs: [mac], nonce, stepMs: cfg.stepMs, linesPerStep: cfg.linesPerStep });
}

/** Log ingest: `tokens.length` agents each POST `batches` batches of `batchLines` lines, all at once. */
async function ingest(m: Extract<FromParent, { type: "ingest" }>) {
  const t0 = performance.now();
  await Promise.all(
    m.tokens.map(async ({ token, stepId }, a) => {
      for (let b = 0; b < m.batches; b++) {
        const lines = Array.from({ length: m.batchLines }, (_, i) => ({ seq: b * m.batchLines + i, ts: Date.now(), stream: "stdout", text: `agent ${a} batch ${b} line ${i}: lorem ipsum dolor sit amet` }));
        const r = await post(`/steps/${stepId}/logs`, { lines }, token);
        if (r.status !== 200 || (r.body as { accepted?: number }).accepted !== m.batchLines) throw new Error(`ingest: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }),
  );
  return { lines: m.tokens.length * m.batches * m.batchLines, ms: performance.now() - t0 };
}

/** p99 from an agent's POST to the line arriving at each of `subscribers` socket.io clients. */
async function fanout(m: Extract<FromParent, { type: "fanout" }>) {
  const sockets: Socket[] = [];
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  let expected = 0;
  let resolveAll: () => void = () => undefined;
  const allIn = new Promise<void>((r) => (resolveAll = r));
  for (let i = 0; i < m.subscribers; i++) {
    const s = io(cfg.api, { transports: ["websocket"], extraHeaders: { cookie: m.cookie }, forceNew: true });
    s.on("live", (e: { type: string; lines?: { seq: number }[] }) => {
      if (e.type !== "log.lines") return;
      const now = performance.now();
      for (const l of e.lines ?? []) {
        const t = sentAt.get(l.seq);
        if (t !== undefined) latencies.push(now - t);
      }
      if (latencies.length >= expected && expected > 0) resolveAll();
    });
    await new Promise<void>((resolve, reject) => {
      s.once("connect_error", reject);
      s.once("connect", () => s.emit("subscribe", { machineId: m.machineId }, () => resolve()));
    });
    sockets.push(s);
  }
  expected = m.samples * m.subscribers;
  for (let i = 0; i < m.samples; i++) {
    const seq = m.seqFrom + i;
    sentAt.set(seq, performance.now());
    await post(`/steps/${m.stepId}/logs`, { lines: [{ seq, ts: Date.now(), stream: "stdout", text: `probe ${i}` }] }, m.token);
    await sleep(20);
  }
  await Promise.race([allIn, sleep(10_000)]);
  for (const s of sockets) s.close();
  return { latencies, expected };
}

process.on("message", (m: FromParent) => {
  const fail = (err: unknown) => send({ type: "error", message: err instanceof Error ? err.stack : String(err) });
  if (m.type === "config") {
    cfg = { api: m.api, stepMs: m.stepMs, linesPerStep: m.linesPerStep };
    send({ type: "ready" });
  } else if (m.type === "cpu") {
    // The agents' own CPU time (they share the host's cores with the server).
    const u = process.cpuUsage();
    send({ type: "cpu", ms: (u.user + u.system) / 1000 });
  } else if (m.type === "boot") {
    if (running.has(m.mac)) return;
    running.add(m.mac);
    simAgent(m.mac, m.nonce).then(() => running.delete(m.mac), fail);
  } else if (m.type === "ingest") {
    ingest(m).then((r) => send({ type: "ingest", ...r }), fail);
  } else if (m.type === "fanout") {
    fanout(m).then((r) => send({ type: "fanout", ...r }), fail);
  }
});
