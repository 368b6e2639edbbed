/**
 * GET /api/jobs/<jobId>/record[?format=txt|view]: a job's whole record (server/orchestrator/job-record.ts) as one
 * download for a support ticket: JSON with everything including a `text` rendering, or that text alone.
 * `format=view` is what the job page reads: compact JSON without the text rendering and the raw transcript, inline.
 * Any signed-in user (session cookie) or API token.
 */
import type http from "node:http";
import { AppError } from "../../lib/errors";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import { bearerOf, tokenUser } from "../auth/tokens";
import type { Db } from "../db/client";
import { storeOf, type Store } from "../db/store";
import { jobRecord } from "../orchestrator/job-record";

export const JOB_RECORD_PATH = /^\/api\/jobs\/(\d{1,15})\/record$/;

export async function serveJobRecord(req: http.IncomingMessage, res: http.ServerResponse, url: URL, db: Db, consoleDir: string, store: Store = storeOf({ db })): Promise<void> {
  const user = req.headers.authorization !== undefined ? ((await tokenUser(store, bearerOf(req.headers.authorization)))?.user ?? null) : await sessionUser(store, parseCookies(req.headers.cookie)[SESSION_COOKIE]);
  if (!user) {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end("Sign in first");
    return;
  }
  const id = Number(JOB_RECORD_PATH.exec(url.pathname)![1]);
  let record;
  try {
    record = await jobRecord(store, id, consoleDir, undefined, undefined, url.searchParams.get("format") === "view");
  } catch (err) {
    if (err instanceof AppError && err.code === "NOT_FOUND") {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end(err.message);
      return;
    }
    throw err;
  }
  const format = url.searchParams.get("format");
  if (format === "view") {
    const { text: _text, ...rest } = record;
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" });
    res.end(JSON.stringify(rest));
    return;
  }
  const txt = format === "txt";
  const base = `rackhand-job-${id}-${record.machine.name}`;
  res.writeHead(200, {
    "content-type": txt ? "text/plain; charset=utf-8" : "application/json; charset=utf-8",
    "content-disposition": `attachment; filename="${base}.${txt ? "txt" : "json"}"`,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(txt ? record.text : JSON.stringify(record, null, 1));
}
