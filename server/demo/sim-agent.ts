/**
 * A simulated agent: speaks the real agent HTTP protocol (lib/agent-protocol.ts: lookup, heartbeat long-poll,
 * logs, results) and reports every step it is given as done after `stepMs`, with a few log lines. Used by the
 * demo lab (server/demo/demo-agents.ts, `npm start` with the fake driver) and by bench:deploy's agent process.
 * It writes nothing to any disk: every line it sends says "simulated".
 */
import { backoffDelay, sleep } from "../../lib/retry";

export type AgentPost = (path: string, body: unknown, token?: string) => Promise<{ status: number; body: unknown }>;

export interface SimAgentOptions {
  macs: string[];
  nonce: string | null;
  inventory?: Record<string, unknown>;
  stepMs: number;
  linesPerStep: number;
  /** How long to keep retrying a lookup that finds no job yet (404), in tries 25 ms apart. */
  lookupTries?: number;
  signal?: AbortSignal;
}

/** Retry transport errors and 5xx answers with backoff (20 tries), like the real agent's client. */
export function retryingPost(request: AgentPost): AgentPost {
  return async (path, body, token) => {
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
  };
}

/**
 * Boot, look up, run the job to its end. Like the real agent's loop (agent/runner.ts runJob), the heartbeat
 * long-poll stays open while steps run, so the server hands out the next step on that poll as soon as a result
 * completes a group. @throws Error when the lookup is refused
 */
export async function runSimulatedAgent(post: AgentPost, o: SimAgentOptions): Promise<void> {
  const ask = { macs: o.macs, ...(o.nonce && { nonce: o.nonce }), ...(o.inventory && { inventory: o.inventory }) };
  let look = await post("/lookup", ask);
  for (let i = 0; look.status === 404 && i < (o.lookupTries ?? 200) && !o.signal?.aborted; i++) {
    await sleep(25);
    look = await post("/lookup", ask);
  }
  if (look.status !== 200) throw new Error(`lookup ${o.macs.join(",")}: ${look.status} ${JSON.stringify(look.body)}`);
  const { token, nextSeq } = look.body as { token: string; nextSeq: number };
  let seq = nextSeq;
  const running = new Map<number, Promise<void>>();
  const errors: unknown[] = [];
  const runStep = async (s: { id: number; attempt: number; name: string }) => {
    const lines = Array.from({ length: o.linesPerStep }, (_, i) => ({ seq: seq++, ts: Date.now(), stream: "agent", text: `${s.name}: simulated line ${i}` }));
    // The real agent ships lines while the step works (agent/log-shipper.ts, every 200 ms) and only flushes what is
    // left before the result: the lines' POST overlaps the work.
    await Promise.all([post(`/steps/${s.id}/logs`, { lines }, token), sleep(o.stepMs)]);
    // The inventory step's result becomes the machine's inventory (server/agent-api/agent-work.ts).
    const result = s.name === "inventory" && o.inventory ? o.inventory : { simulated: true };
    await post(`/steps/${s.id}/result`, { attempt: s.attempt, ok: true, result }, token);
  };
  while (!o.signal?.aborted) {
    // As the real agent: the steps it runs or still reports (a lost claim's answer is handed out again).
    const hb = await post("/heartbeat", { waitS: 20, running: [...running.keys()] }, token);
    const beat = hb.body as { done?: boolean; steps?: { id: number; attempt: number; name: string }[] };
    if (hb.status === 401 || beat.done) break;
    for (const s of beat.steps ?? []) {
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
