/**
 * GET /api/consoles/<machineId>/transcript[?download=1]: a machine's console transcript (rotated files first),
 * for any signed-in user. Plain text; `download=1` makes the browser save it.
 */
import fs from "node:fs";
import type http from "node:http";
import { eq } from "drizzle-orm";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import type { Store } from "../db/store";
import { transcriptFiles } from "../oob/console/transcript";

/** Up to 10 digits: every id the machines table can hold (an integer column on PostgreSQL) fits, and no more. */
export const TRANSCRIPT_PATH = /^\/api\/consoles\/(\d{1,10})\/transcript$/;

export async function serveTranscript(req: http.IncomingMessage, res: http.ServerResponse, url: URL, store: Store, consoleDir: string): Promise<void> {
  const id = Number(TRANSCRIPT_PATH.exec(url.pathname)![1]);
  if (!(await sessionUser(store, parseCookies(req.headers.cookie)[SESSION_COOKIE]))) {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end("Sign in first");
    return;
  }
  const { machines } = store.t;
  const [m] = id <= 2 ** 31 - 1 ? await store.db.select({ name: machines.name }).from(machines).where(eq(machines.id, id)).limit(1) : [];
  if (!m) {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("No such machine");
    return;
  }
  const headers: http.OutgoingHttpHeaders = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" };
  if (url.searchParams.get("download") === "1") headers["content-disposition"] = `attachment; filename="${m.name}-console.log"`;
  res.writeHead(200, headers);
  for (const f of transcriptFiles(consoleDir, id)) {
    await new Promise<void>((resolve, reject) => {
      const s = fs.createReadStream(f);
      s.on("error", reject);
      s.on("end", resolve);
      s.pipe(res, { end: false });
    });
  }
  res.end();
}
