/**
 * GET /api/consoles/<machineId>/transcript[?download=1]: a machine's console transcript (rotated files first),
 * for any signed-in user. Plain text; `download=1` makes the browser save it.
 */
import fs from "node:fs";
import type http from "node:http";
import { eq } from "drizzle-orm";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import type { Db } from "../db/client";
import { storeOf, type Store } from "../db/store";
import { machines } from "../db/schema";
import { transcriptFiles } from "../oob/console/transcript";

export const TRANSCRIPT_PATH = /^\/api\/consoles\/(\d+)\/transcript$/;

export async function serveTranscript(req: http.IncomingMessage, res: http.ServerResponse, url: URL, db: Db, consoleDir: string, store: Store = storeOf({ db })): Promise<void> {
  const id = Number(TRANSCRIPT_PATH.exec(url.pathname)![1]);
  if (!(await sessionUser(store, parseCookies(req.headers.cookie)[SESSION_COOKIE]))) {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end("Sign in first");
    return;
  }
  const m = db.select({ name: machines.name }).from(machines).where(eq(machines.id, id)).get();
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
