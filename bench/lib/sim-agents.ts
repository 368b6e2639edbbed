/**
 * Child process of bench/deploy.ts: simulated agents that speak the real agent HTTP protocol (lookup,
 * heartbeat long-poll, logs, results), each step taking a fixed time; plus the log-ingest load and the
 * socket.io fan-out latency probe. Runs apart from the server so the server's CPU is measured alone.
 */
import http from "node:http";
import { io, type Socket } from "socket.io-client";
import { AGENT_API_PREFIX } from "../../lib/agent-protocol";
import { backoffDelay, sleep } from "../../lib/retry";

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

async function post(path: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
  for (let tries = 0; ; tries++) {
    try {
      const res = await request(path, body, token);
      if (res.status >= 500 && tries < 20) {
        await sleep(backoffDelay(tries, { baseMs: 50, maxMs: 50 * 2 ** 5 }));
        continue;
      }
      return res;
    } catch (err) {
      if (tries >= 20) throw err;
      await sleep(backoffDelay(tries, { baseMs: 50, maxMs: 50 * 2 ** 5 }));
    }
  }
}

const running = new Set<string>();

/**
 * One simulated agent: booted by the power cycle, it runs its job to the end. Like the real agent's loop
 * (agent/runner.ts runJob), the heartbeat long-poll stays open while steps run, so the server hands out the next
 * step on that poll as soon as a result completes a group.
 */
async function simAgent(mac: string, nonce: string | null): Promise<void> {
  const ask = { macs: [mac], ...(nonce && { nonce }) };
  let look = await post("/lookup", ask);
  for (let i = 0; look.status === 404 && i < 200; i++) {
    await sleep(25);
    look = await post("/lookup", ask);
  }
  if (look.status !== 200) throw new Error(`lookup ${mac}: ${look.status} ${JSON.stringify(look.body)}`);
  const { token } = look.body as { token: string };
  let seq = look.body.nextSeq as number;
  const running = new Map<number, Promise<void>>();
  const errors: unknown[] = [];
  const runStep = async (s: { id: number; attempt: number; name: string }) => {
    const lines = Array.from({ length: cfg.linesPerStep }, (_, i) => ({ seq: seq++, ts: Date.now(), stream: "agent", text: `${s.name}: simulated line ${i}` }));
    // The real agent ships lines while the step works (agent/log-shipper.ts, every 200 ms) and only flushes what is
    // left before the result: the lines' POST overlaps the work.
    await Promise.all([post(`/steps/${s.id}/logs`, { lines }, token), sleep(cfg.stepMs)]);
    await post(`/steps/${s.id}/result`, { attempt: s.attempt, ok: true, result: { simulated: true } }, token);
  };
  for (;;) {
    const hb = await post("/heartbeat", { waitS: 20 }, token);
    if (hb.status === 401 || hb.body.done) break;
    for (const s of hb.body.steps as { id: number; attempt: number; name: string }[]) {
      if (running.has(s.id)) continue;
      running.set(
        s.id,
        runStep(s)
          .catch((err: unknown) => void errors.push(err))
          .finally(() => running.delete(s.id)),
      );
    }
  }
  await Promise.all(running.values());
  if (errors.length) throw errors[0];
}

/** Log ingest: `tokens.length` agents each POST `batches` batches of `batchLines` lines, all at once. */
async function ingest(m: Extract<FromParent, { type: "ingest" }>) {
  const t0 = performance.now();
  await Promise.all(
    m.tokens.map(async ({ token, stepId }, a) => {
      for (let b = 0; b < m.batches; b++) {
        const lines = Array.from({ length: m.batchLines }, (_, i) => ({ seq: b * m.batchLines + i, ts: Date.now(), stream: "stdout", text: `agent ${a} batch ${b} line ${i}: lorem ipsum dolor sit amet` }));
        const r = await post(`/steps/${stepId}/logs`, { lines }, token);
        if (r.status !== 200 || r.body.accepted !== m.batchLines) throw new Error(`ingest: ${r.status} ${JSON.stringify(r.body)}`);
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
