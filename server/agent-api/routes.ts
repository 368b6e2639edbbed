import type http from "node:http";
import type { ZodType } from "zod";
import { AGENT_API_PREFIX, heartbeatRequest, logsRequest, lookupRequest, resultRequest } from "../../lib/agent-protocol";
import type { Domain } from "../context";
import { HttpError, readJson, sendJson } from "../http/json";
import type { Orchestrator } from "../orchestrator/orchestrator";
import { AgentApiError, createAgentWork, type AgentApiErrorKind } from "./agent-work";

const SMALL_BODY = 256 * 1024;
const LOG_BODY = 4 * 1024 * 1024;

const STATUS: Record<AgentApiErrorKind, number> = { invalid: 400, unauthenticated: 401, not_found: 404, conflict: 409, unavailable: 503 };

function parse<T>(schema: ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(400, r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  return r.data;
}

/** Step ids are int4 on PostgreSQL: a larger one is no step (and would be a database error there, a 500). */
const STEP_ID_MAX = 2 ** 31 - 1;
function stepIdOf(digits: string): number {
  const id = Number(digits);
  if (id > STEP_ID_MAX) throw new HttpError(404, `no step ${digits}`);
  return id;
}

function bearer(req: http.IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined;
}

/**
 * The agent's HTTP API (plain JSON, token-authenticated): lookup, heartbeat (long-poll), log ingest, step results.
 * This adapter parses bodies, authenticates the bearer token and maps errors; the work is in `agent-work.ts`.
 * Returns false when the path is not the agent API's.
 */
export function createAgentApi(d: Domain, orchestrator: Orchestrator) {
  const work = createAgentWork(d, orchestrator);

  async function heartbeat(req: http.IncomingMessage, res: http.ServerResponse) {
    const { job, leased } = await work.authenticateHeartbeat(bearer(req));
    const { waitS, running } = parse(heartbeatRequest, await readJson(req, SMALL_BODY));
    let gone = false;
    res.once("close", () => (gone = true));
    return work.heartbeat(job, waitS, () => gone, bearer(req), running, leased);
  }

  async function logs(req: http.IncomingMessage, stepId: number) {
    // Token and step checked before the body is read.
    const { job, step } = await work.authenticateStep(bearer(req), stepId);
    const { lines } = parse(logsRequest, await readJson(req, LOG_BODY));
    return work.ingestLogs(job, step, lines);
  }

  async function result(req: http.IncomingMessage, stepId: number) {
    const { job, step } = await work.authenticateStep(bearer(req), stepId);
    return work.reportResult(job, step, parse(resultRequest, await readJson(req, SMALL_BODY)));
  }

  return async function handle(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): Promise<boolean> {
    if (!pathname.startsWith(AGENT_API_PREFIX + "/")) return false;
    const path = pathname.slice(AGENT_API_PREFIX.length);
    try {
      if (req.method !== "POST") throw new HttpError(405, "use POST");
      let m: RegExpMatchArray | null;
      if (path === "/lookup") sendJson(res, 200, await work.lookup(parse(lookupRequest, await readJson(req, SMALL_BODY))));
      else if (path === "/heartbeat") sendJson(res, 200, await heartbeat(req, res));
      else if ((m = path.match(/^\/steps\/(\d{1,12})\/logs$/))) sendJson(res, 200, await logs(req, stepIdOf(m[1]!)));
      else if ((m = path.match(/^\/steps\/(\d{1,12})\/result$/))) sendJson(res, 200, await result(req, stepIdOf(m[1]!)));
      else throw new HttpError(404, `no agent API at ${path}`);
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.message });
      else if (err instanceof AgentApiError) sendJson(res, STATUS[err.kind], { error: err.message });
      else {
        d.log.error("agent API error", { path, error: String(err) });
        sendJson(res, 500, { error: "internal error" });
      }
      // Drain whatever the client still sends so the connection stays usable.
      req.resume();
    }
    return true;
  };
}
